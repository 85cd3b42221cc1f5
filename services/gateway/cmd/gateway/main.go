// Command gateway serves Herald's public REST API and proxies it to the internal gRPC
// services. `gateway operator grant|revoke|list` manages platform operators.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/services/gateway/internal/app"
	"go.uber.org/zap"
)

func main() {
	log := logging.Bootstrap(app.Service, os.LookupEnv)
	if len(os.Args) > 1 && os.Args[1] == "operator" {
		operator(log)
		return
	}
	if err := app.Run(context.Background(), log, config.OS()); err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "gateway: configuration: %s\n", cerr)
		} else {
			log.Error("exit", zap.Error(err))
		}
		os.Exit(1)
	}
}

// operator runs the operator command and exits 2 on a usage error, 1 on any other.
func operator(log *zap.Logger) {
	err := app.Operator(context.Background(), log, config.OS(), os.Args[2:], os.Stdout)
	var uerr *app.UsageError
	var cerr *config.Error
	switch {
	case err == nil:
	case errors.As(err, &uerr):
		fmt.Fprintf(os.Stderr, "gateway operator: %s\n\n%s\n", uerr, app.OperatorUsage)
		os.Exit(2)
	case errors.As(err, &cerr):
		fmt.Fprintf(os.Stderr, "gateway operator: configuration: %s\n", cerr)
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "gateway operator: %s\n", err)
		os.Exit(1)
	}
}
