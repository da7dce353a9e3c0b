"""CI: how the workflows reach and deploy the stack (CodeBuild-hosted runner)."""
