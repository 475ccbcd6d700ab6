"""Docker Hub token kinds, PAT permission levels and OAT scopes, as constants (dockerhub-api.md §1)."""

from __future__ import annotations

__all__ = [
    "OAT_PREFIX",
    "PAT_ADMIN",
    "PAT_ADMIN_LABEL",
    "PAT_PREFIX",
    "PAT_PUBLIC_READ",
    "PAT_READ",
    "PAT_WRITE",
    "SCOPE_GROUP_READ",
    "SCOPE_REPOSITORY_CREATE",
    "SCOPE_REPOSITORY_EDIT",
    "SCOPE_REPOSITORY_LIST",
    "SCOPE_REPOSITORY_READ",
    "SCOPE_REPO_GROUP_EDIT",
    "SCOPE_REPO_GROUP_READ",
    "SCOPE_TAG_READ",
]

PAT_PREFIX = "dckr_pat_"
"""Personal access tokens start with this."""
OAT_PREFIX = "dckr_oat_"
"""Organization access tokens start with this; their login identifier is the org name."""

# A PAT carries exactly one of these levels; each includes the ones above it.
PAT_PUBLIC_READ = "repo:public_read"
PAT_READ = "repo:read"
PAT_WRITE = "repo:write"
PAT_ADMIN = "repo:admin"
"""Read, Write, Delete: what creating repositories, editing descriptions, changing privacy and
granting teams need (the OAT reference and Docker's Terraform provider, dockerhub-api.md §12);
Read & Write (``repo:write``) is not enough for repository management."""
PAT_ADMIN_LABEL = '"Read, Write, Delete"'

# OAT scopes imagevet needs (an OAT carries an explicit set of them).
SCOPE_REPOSITORY_CREATE = "scope-repository-create"  # org level; the only way to create repos
SCOPE_REPOSITORY_LIST = "scope-repository-list"  # without it, listings silently omit private repos
SCOPE_REPOSITORY_READ = "scope-repository-read"
SCOPE_REPOSITORY_EDIT = "scope-repository-edit"  # privacy and descriptions
SCOPE_TAG_READ = "scope-tag-read"
SCOPE_REPO_GROUP_READ = "scope-repo-group-read"
SCOPE_REPO_GROUP_EDIT = "scope-repo-group-edit"  # team permissions on repositories
SCOPE_GROUP_READ = "scope-group-read"  # resolve team names to ids
