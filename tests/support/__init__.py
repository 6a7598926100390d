"""What the test layers and the benchmarks build on (the conftests hold fixtures only): processes
(processes), their environment (runtime), workers and probes (workers), brokers (brokers), waiting
(waiting), ports (ports), Flower (flower), the container tests' browser (browser), task events (events),
test-only tasks (tasks), the live cluster and Helm releases (cluster, helm_release), real CRDs (crds),
ServiceMonitor targets (monitors), PromQL (promql) and promtool (promtool)."""
