"""CrossGuard policy pack of llm-platform (rules in one module per concern).

Nothing is imported here: ``policies/__main__.py`` starts the pack's gRPC server when
run, and the offline plan and tests import the rule modules directly.
"""
