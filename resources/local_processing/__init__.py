"""A local stand-in for SageMaker Processing: runs the same request as N local instances."""
