// Pins github.com/argoproj/argo-cd/v3, whose AppProject CRD the tests install
// (scripts/argocd-crd.sh). Nothing is built from it, and no go command runs here: the
// module's own go.mod asks for a newer Go than the machines have (see the script).
module customer-operator.test/argo-cd

go 1.26.0

require github.com/argoproj/argo-cd/v3 v3.6.1
