// Command recipient runs the recipient service: recipients of a domain and their
// subscription status, over gRPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/logging"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/recipient/internal/app"
)

func main() {
	log := logging.Bootstrap(app.Service, os.LookupEnv)
	if err := app.Run(context.Background(), log, config.OS()); err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "%s: configuration: %s\n", app.Service, cerr)
		} else {
			log.Error("exit", zap.Error(err))
		}
		os.Exit(1)
	}
}
