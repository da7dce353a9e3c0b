"""The OpenAI-compatible gateway (LiteLLM proxy) in front of the model servers."""
