"""imagevet: mirror vetted container images into your organization, byte for byte, with an audit trail."""

__version__ = "0.1.0"
