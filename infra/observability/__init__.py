"""Prometheus, Alertmanager, alert rules and Grafana dashboards."""
