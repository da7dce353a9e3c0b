"""ECR pull-through cache for the upstream registries the platform pulls from."""
