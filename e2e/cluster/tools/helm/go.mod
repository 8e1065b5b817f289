// Wrapper module: builds the helm client (chart tests, operations guide) from the Go module proxy.
module palisade.dev/e2e/tools/helm

go 1.26.0

require helm.sh/helm/v3 v3.22.0
