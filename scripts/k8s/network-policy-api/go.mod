// Pins sigs.k8s.io/network-policy-api, whose ClusterNetworkPolicy CRD the tests install
// (scripts/cluster-network-policy-crd.sh). Nothing is built from it.
module customer-operator.test/network-policy-api

go 1.26.0

require sigs.k8s.io/network-policy-api v0.3.0
