"""Generated CustomResourceDefinitions shaped like controller-gen's output (for the speed tests and
``bench/check.py --crds``): a deep ``openAPIV3Schema`` with a pod-template-like ``containers``
schema, descriptions that quote manifests (``kind: Deployment``, ``image: foo``), block scalars,
nested ``kind`` properties and a ``listKind``.  None of it is a workload: no image reference."""

from __future__ import annotations

_CONTAINER = """\
{pad}{name}:
{pad}  description: |-
{pad}    A single application container that you want to run within a pod.
{pad}    For example:
{pad}      kind: Deployment
{pad}      spec:
{pad}        containers:
{pad}        - image: foo
{pad}          name: app
{pad}  items:
{pad}    properties:
{pad}      image:
{pad}        description: 'Container image name. image: foo:1.0 More info: https://kubernetes.io/docs/concepts/containers/images'
{pad}        type: string
{pad}      imagePullPolicy:
{pad}        description: "Image pull policy. One of Always, Never, IfNotPresent.\\n\\
{pad}          Defaults to Always if :latest tag is specified."
{pad}        enum: [Always, Never, IfNotPresent]
{pad}        type: string
{pad}      kind:
{pad}        description: Kind is a string value representing the REST resource this object represents.
{pad}        type: string
{pad}      env:
{pad}        items:
{pad}          properties:
{pad}            name: {{description: Name of the environment variable., type: string}}
{pad}            value:
{pad}              description: >-
{pad}                Variable references $(VAR_NAME) are expanded using the previously
{pad}                defined environment variables in the container and any service environment variables.
{pad}              type: string
{pad}          required: [name]
{pad}          type: object
{pad}        type: array
{pad}    required:
{pad}    - name
{pad}    type: object
{pad}  type: array
"""


def crd_yaml(index: int, size: int = 460_000) -> str:
    """One CRD document of about ``size`` characters (``---`` first)."""
    head = f"""---
# Source: generated, in the shape of controller-gen v0.14 output
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    controller-gen.kubebuilder.io/version: v0.14.0
  name: widgets{index}.example.com
spec:
  group: example.com
  names:
    kind: Widget{index}
    listKind: Widget{index}List
    plural: widgets{index}
    singular: widget{index}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: "Widget runs containers. image: foo"
        properties:
          apiVersion:
            type: string
          kind:
            type: string
          spec:
            properties:
"""
    parts = [head]
    total = len(head)
    n = 0
    while total < size:
        block = _CONTAINER.format(pad=" " * 14, name=f"containers{n}")
        parts.append(block)
        total += len(block)
        n += 1
    parts.append("            type: object\n        type: object\n")
    return "".join(parts)


def crd_file(index: int, documents: int = 1, size: int = 460_000) -> str:
    """A file of ``documents`` CRDs, each about ``size`` characters."""
    return "".join(crd_yaml(index * 100 + d, size // documents) for d in range(documents))
