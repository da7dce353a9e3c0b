"""Alertmanager configuration: routing by severity, grouping, inhibition.

The configuration holds no secret. Receivers read the Slack webhook URL and the PagerDuty
routing key from files (``api_url_file``, ``routing_key_file``) that the Prometheus
operator mounts from a Kubernetes Secret listed in ``alertmanagerSpec.secrets``, at
``/etc/alertmanager/secrets/<secret name>/<key>``. The secrets therefore never enter the
Helm values (which Helm stores in clear in its release Secret); Pulumi creates that
Secret from the stack's secret config, so they stay secret in Pulumi state too.

Routing, one decision per severity (:data:`ROUTING`; ``tests/test_alertmanager.py``
proves each with ``amtool config routes test``): nobody's alert is dropped. Only
kube-prometheus-stack's ``Watchdog`` heartbeat (always firing by design) and its
``InfoInhibitor`` helper (an inhibition source, not a notification) go nowhere.
"""

from __future__ import annotations

from typing import Any, Final

SLACK_KEY: Final = "slack-webhook-url"
PAGERDUTY_KEY: Final = "pagerduty-routing-key"
SECRETS_ROOT: Final = "/etc/alertmanager/secrets"
"""Where the operator mounts each Secret of ``alertmanagerSpec.secrets``."""

NULL: Final = "null"
SLACK: Final = "slack"
SLACK_INFO: Final = "slack-info"
PAGERDUTY: Final = "pagerduty"

ROUTING: Final = {
    "critical": (PAGERDUTY, SLACK),
    "warning": (SLACK,),
    "info": (SLACK_INFO,),
    "(none or other)": (SLACK,),
}
"""Receivers of each severity: critical pages and is posted; warning is posted; info
goes to the low-noise info channel once a day per alert; an alert without a known
severity is posted like a warning rather than lost."""
INFO_REPEAT_INTERVAL: Final = "24h"

GROUP_BY: Final = ("alertname", "namespace", "model_name")
INHIBIT_EQUAL: Final = ("alertname", "namespace", "model_name", "service", "instance", "gpu")
"""Labels a critical tier must share with a warning to silence it: what tells two firing
series of one alert apart (a model, an inference Service, a GPU: the DCGM series' node
and index). Alertmanager takes a label both lack as equal, so a label of one alert
narrows no other."""


def _slack(channel: str, secrets_dir: str, *, send_resolved: bool) -> dict[str, Any]:
    return {
        "api_url_file": f"{secrets_dir}/{SLACK_KEY}",
        "channel": channel,
        "send_resolved": send_resolved,
        "title": (
            "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} "
            "({{ .CommonLabels.severity }}, {{ .CommonLabels.cluster }})"
        ),
        "text": (
            "{{ range .Alerts }}*{{ .Annotations.summary }}*\n"
            "{{ .Annotations.description }}\n"
            "<{{ .Annotations.runbook_url }}|runbook>\n{{ end }}"
        ),
    }


def alertmanager_config(
    *, slack_channel: str, secrets_dir: str, info_slack_channel: str | None = None
) -> dict[str, Any]:
    """The full Alertmanager configuration.

    ``secrets_dir`` is the directory holding the files ``slack-webhook-url`` and
    ``pagerduty-routing-key`` (``/etc/alertmanager/secrets/<secret>`` in the cluster).
    ``info_slack_channel`` receives info alerts (default ``slack_channel``).

    Every top-level key and every key of ``route`` that kube-prometheus-stack's default
    ``alertmanager.config`` has is set here: Helm merges maps with the chart defaults, so
    a key left out would silently keep the chart's value.
    """
    return {
        "global": {"resolve_timeout": "5m"},
        "templates": ["/etc/alertmanager/config/*.tmpl"],
        "route": {
            # Anything without a known severity still reaches people.
            "receiver": SLACK,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                # kube-prometheus-stack's always-firing heartbeat and info-inhibitor helper.
                {"receiver": NULL, "matchers": ['alertname =~ "Watchdog|InfoInhibitor"']},
                {"receiver": PAGERDUTY, "matchers": ['severity = "critical"'], "continue": True},
                {"receiver": SLACK, "matchers": ['severity =~ "critical|warning"']},
                {
                    "receiver": SLACK_INFO,
                    "matchers": ['severity = "info"'],
                    "repeat_interval": INFO_REPEAT_INTERVAL,
                },
            ],
        },
        "inhibit_rules": [
            {
                # A critical tier silences the warning tier of the same alert and series.
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity = "warning"'],
                "equal": list(INHIBIT_EQUAL),
            },
            {
                "source_matchers": ['severity =~ "critical|warning"'],
                "target_matchers": ['severity = "info"'],
                "equal": list(INHIBIT_EQUAL),
            },
        ],
        "receivers": [
            {"name": NULL},
            {
                "name": SLACK,
                "slack_configs": [_slack(slack_channel, secrets_dir, send_resolved=True)],
            },
            {
                "name": SLACK_INFO,
                "slack_configs": [
                    _slack(info_slack_channel or slack_channel, secrets_dir, send_resolved=False)
                ],
            },
            {
                "name": PAGERDUTY,
                "pagerduty_configs": [
                    {
                        "routing_key_file": f"{secrets_dir}/{PAGERDUTY_KEY}",
                        "send_resolved": True,
                        "severity": "critical",
                        "description": (
                            "{{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }} "
                            "({{ .CommonLabels.cluster }})"
                        ),
                    }
                ],
            },
        ],
    }
