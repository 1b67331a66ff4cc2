"""Clients and everything about talking to them: R2 over S3, Kubernetes ConfigMaps and claims."""
