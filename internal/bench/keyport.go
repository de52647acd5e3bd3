package bench

import (
	"context"
	"log/slog"

	"github.com/keyport/keyport/internal/testenv"
)

// ClusterName is the Keyport cluster the bench starts.
const ClusterName = testenv.ClusterName

// StartKeyport starts a whole Keyport cluster (auth, proxy and Kubernetes Service) in this
// process, the way the end-to-end tests do, with the Kubernetes Service enrolling every
// context of kubeconfig with labels. The caller must call Stop.
func StartKeyport(ctx context.Context, dir, kubeconfig string, labels map[string]string, logger *slog.Logger) (*testenv.Cluster, error) {
	return testenv.Start(ctx, dir, testenv.WithKube(kubeconfig, labels), testenv.WithLogger(logger))
}
