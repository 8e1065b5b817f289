// Wrapper module: builds KWOK, which simulates nodes and pod lifecycles.
module palisade.dev/e2e/tools/kwok

go 1.25

require sigs.k8s.io/kwok v0.7.0
