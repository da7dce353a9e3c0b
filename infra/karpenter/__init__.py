"""Karpenter controller, EC2NodeClass and the GPU and CPU NodePools."""
