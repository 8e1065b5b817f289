# Pinned versions of the local control plane. Changing one rebuilds just that component.
K8S_VERSION=v1.35.4       # must match the k8s-openapi feature (v1_35) of the Rust crates
ETCD_VERSION=v3.6.5       # the etcd release Kubernetes v1.35 pins
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.22.0      # helm client for the chart tests (helm.sh/helm/v3 on the Go module proxy)
