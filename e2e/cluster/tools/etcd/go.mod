// Wrapper module: builds etcd at the version Kubernetes v1.35 pins.
module palisade.dev/e2e/tools/etcd

go 1.25

require go.etcd.io/etcd/server/v3 v3.6.5
