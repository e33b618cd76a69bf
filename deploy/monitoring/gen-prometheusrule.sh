#!/bin/sh
# Generates prometheusrule.yaml (a PrometheusRule for the Prometheus operator)
# from alerts.yaml, the plain rules file, so that the two cannot drift: the
# PrometheusRule's spec is alerts.yaml itself, indented under `spec:`.
# tests/deploy regenerates it and fails on any difference.
#
# Usage: deploy/monitoring/gen-prometheusrule.sh [OUTPUT]
#   OUTPUT defaults to deploy/monitoring/prometheusrule.yaml.
#
# The operator picks up PrometheusRules by label (its ruleSelector); add the
# label yours uses (for example release: prometheus) in a kustomize overlay.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/alerts.yaml"
out="${1:-$here/prometheusrule.yaml}"

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
  echo "# GENERATED from alerts.yaml by gen-prometheusrule.sh: do not edit."
  echo "apiVersion: monitoring.coreos.com/v1"
  echo "kind: PrometheusRule"
  echo "metadata:"
  echo "  name: metrics-adapter"
  echo "  namespace: metrics-adapter"
  echo "  labels:"
  echo "    app.kubernetes.io/name: metrics-adapter"
  echo "spec:"
  # alerts.yaml's comments stay with it; empty lines stay empty.
  sed -e '/^$/!s/^/  /' "$src"
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
