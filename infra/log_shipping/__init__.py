"""CloudWatch log groups and Fluent Bit."""
