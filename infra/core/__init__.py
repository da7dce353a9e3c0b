"""Core layer: schema types, names and label keys, IAM documents, the Helm release helper, GPU
catalog and prices. Knows no component; ``policies/`` imports only this layer.
"""
