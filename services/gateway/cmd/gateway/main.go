// Command gateway serves Herald's public REST API and proxies it to the internal gRPC
// services.
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
