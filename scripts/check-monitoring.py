#!/usr/bin/python3
"""Checks the shipped Prometheus rules and Grafana dashboard against what edmmd exports.

  check-monitoring.py --scrape FILE [--rules R] [--tests T] [--dashboard D]
  check-monitoring.py --self-test

- Every PromQL expression (recording and alerting rules, dashboard targets and variable queries,
  with Grafana's variables substituted) parses: they are written into one rules file as recording
  rules and given to `promtool check rules`.
- Every metric an expression names is a family of the scrape FILE (its `# TYPE` lines: edmmd
  writes one for every family it can export, even without samples; a histogram also has its
  _bucket, _sum and _count series), a recording rule of the rules file, or a series Prometheus
  makes itself (up, scrape_*), or one of kube-state-metrics' that the Kubernetes rules join.
- Every alert of the rules file has, in the rules' unit tests, a case where it fires and a case
  where it does not (promtool test rules checks that they do).
- --self-test: the checks reject a dashboard with an unknown metric, an expression that does not
  parse, and tests without a non-firing case.

Prints one line per problem and exits 1 if there is any. Needs python3-yaml and promtool.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

# Series Prometheus adds to every target itself.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}
# kube-state-metrics' series, which the Kubernetes rules join (docs/kubernetes.md).
KUBE_STATE_METRICS = {"kube_pod_info", "kube_pod_container_resource_limits"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
GRAFANA_VARIABLES = [(r"\$__rate_interval|\$\{__rate_interval\}", "5m"), (r"\$__interval|\$\{__interval\}", "1m"),
                     (r"\$__range|\$\{__range\}", "1h"), (r"\$\{?[A-Za-z_]+\}?", ".*")]


def exported_names(scrape_text):
    families = {}
    for line in scrape_text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            families[parts[2]] = parts[3]
    names = set()
    for name, kind in families.items():
        names.add(name)
        if kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def grafana_to_promql(expr):
    for pattern, value in GRAFANA_VARIABLES:
        expr = re.sub(pattern, value, expr)
    return expr


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        before = text[:match.start()]
        if rest.startswith("(") or name.lower() in KEYWORDS:
            continue
        if re.search(r"[0-9.]$", before):  # the exponent or unit of a number: 1e3, 5m
            continue
        names.add(name)
    return names


def dashboard_expressions(dashboard):
    found = []
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))
    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f'dashboard panel "{panel.get("title")}" {target.get("refId")}', target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") != "query" or not query:
            continue
        match = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)\s*", query)
        found.append((f'dashboard variable ${variable.get("name")}', match.group(1) if match else query))
    return found


def rules_expressions(rules):
    found, recorded, alerts = [], set(), []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                recorded.add(rule["record"])
                found.append((f'recording rule {rule["record"]}', rule["expr"]))
            else:
                alerts.append(rule["alert"])
                found.append((f'alert {rule["alert"]}', rule["expr"]))
    return found, recorded, alerts


def parse_problems(expressions):
    """Runs promtool check rules on every expression; returns its complaints."""
    rules = {"groups": [{"name": "check", "rules": [{"record": f"check:expression_{i}", "expr": grafana_to_promql(e)}
                                                   for i, (_, e) in enumerate(expressions)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        path = f.name
    try:
        result = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if result.returncode == 0:
        return []
    problems = []
    for line in (result.stdout + result.stderr).splitlines():
        index = re.search(r"check:expression_(\d+)|group \"check\", rule (\d+)", line)
        if index:
            i = int(index.group(1) or index.group(2)) - (0 if index.group(1) else 1)
            problems.append(f"{expressions[i][0]}: does not parse: {line.strip()}")
    return problems or [f"promtool check rules failed: {(result.stdout + result.stderr).strip()}"]


def name_problems(expressions, known):
    problems = []
    for where, expr in expressions:
        for name in sorted(metric_names(grafana_to_promql(expr)) - known):
            problems.append(f"{where}: {name} is not a metric edmmd exports nor a recording rule")
    return problems


def coverage_problems(alerts, tests):
    fires, quiet = set(), set()
    for case in tests.get("tests", []):
        for check in case.get("alert_rule_test", []) or []:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    problems = []
    for alert in alerts:
        if alert not in fires:
            problems.append(f"alert {alert}: no unit test where it fires")
        if alert not in quiet:
            problems.append(f"alert {alert}: no unit test where it does not fire")
    return problems


def check(scrape_text, rules, tests, dashboard):
    rule_exprs, recorded, alerts = rules_expressions(rules)
    expressions = rule_exprs + dashboard_expressions(dashboard)
    known = exported_names(scrape_text) | recorded | PROMETHEUS_SERIES | KUBE_STATE_METRICS
    if not exported_names(scrape_text):
        return ["the scrape has no # TYPE lines: not an edmmd exposition"]
    return parse_problems(expressions) + name_problems(expressions, known) + coverage_problems(alerts, tests)


def self_test():
    scrape = "# TYPE edmmd_enclaves gauge\n# TYPE edmmd_request_duration_seconds histogram\n"
    rules = {"groups": [{"name": "g", "rules": [
        {"record": "instance:x:rate5m", "expr": "sum(rate(edmmd_request_duration_seconds_count[5m]))"},
        {"alert": "A", "expr": "edmmd_enclaves > 3"}]}]}
    tests_ok = {"tests": [{"alert_rule_test": [{"alertname": "A", "exp_alerts": [{"exp_labels": {}}]},
                                               {"alertname": "A", "exp_alerts": []}]}]}
    good = {"panels": [{"title": "p", "targets": [{"refId": "A", "expr": 'instance:x:rate5m + edmmd_enclaves{uid=~"$uid"}'}]}]}
    failures = []
    if check(scrape, rules, tests_ok, good):
        failures.append(f"a correct set is refused: {check(scrape, rules, tests_ok, good)}")
    unknown = {"panels": [{"title": "p", "targets": [{"refId": "A", "expr": "rate(edmmd_no_such_metric_total[$__rate_interval])"}]}]}
    if not any("edmmd_no_such_metric_total" in p for p in check(scrape, rules, tests_ok, unknown)):
        failures.append("an unknown metric passes")
    broken = {"panels": [{"title": "p", "targets": [{"refId": "A", "expr": "sum by (uid (edmmd_enclaves)"}]}]}
    if not any("does not parse" in p for p in check(scrape, rules, tests_ok, broken)):
        failures.append("an expression that does not parse passes")
    tests_fire_only = {"tests": [{"alert_rule_test": [{"alertname": "A", "exp_alerts": [{"exp_labels": {}}]}]}]}
    if not any("does not fire" in p for p in check(scrape, rules, tests_fire_only, good)):
        failures.append("an alert without a non-firing case passes")
    names = metric_names('histogram_quantile(0.99, sum by (verb, le) (rate(a_bucket{x="y"}[5m]))) / on (i) group_left (j) b offset 5m > 1e3')
    if names != {"a_bucket", "b"}:
        failures.append(f"metric names misread: {sorted(names)}")
    for failure in failures:
        print(f"FAIL  self-test: {failure}")
    if not failures:
        print("ok    self-test: the checks reject an unknown metric, a parse error and a missing non-firing case")
    return not failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--scrape", help="a scrape of edmmd's /metrics")
    parser.add_argument("--rules", default=os.path.join(root, "contrib/prometheus/edmmd.rules.yml"))
    parser.add_argument("--tests", default=os.path.join(root, "contrib/prometheus/edmmd.rules.test.yml"))
    parser.add_argument("--dashboard", default=os.path.join(root, "contrib/grafana/edmmd.json"))
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        sys.exit(0 if self_test() else 1)
    if not args.scrape:
        parser.error("--scrape is required")
    with open(args.scrape) as f:
        scrape_text = f.read()
    with open(args.rules) as f:
        rules = yaml.safe_load(f)
    with open(args.tests) as f:
        tests = yaml.safe_load(f)
    with open(args.dashboard) as f:
        dashboard = json.load(f)
    problems = check(scrape_text, rules, tests, dashboard)
    for problem in problems:
        print(f"FAIL  {problem}")
    if problems:
        sys.exit(1)
    expressions = len(rules_expressions(rules)[0]) + len(dashboard_expressions(dashboard))
    print(f"ok    {expressions} expressions parse and name only edmmd's metrics and recording rules; every alert has a firing and a quiet test")


if __name__ == "__main__":
    main()
