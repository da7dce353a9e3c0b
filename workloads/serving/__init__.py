"""Model serving: vLLM servers, their namespace, GPU and host memory fit, KEDA and the model
bucket.
"""
