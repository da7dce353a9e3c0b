"""EKS control plane, system node group, add-ons and access entries."""
