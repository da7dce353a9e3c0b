"""Budgets, Kubecost and the cost estimator."""
