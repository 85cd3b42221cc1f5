// Command worker runs Herald's background jobs: the River executors of every queue. It has no
// public API, only the internal admin listener.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/services/worker/internal/app"
	"go.uber.org/zap"
)

func main() {
	log := logging.Bootstrap(app.Service, os.LookupEnv)
	if err := app.Run(context.Background(), log, config.OS()); err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "worker: configuration: %s\n", cerr)
		} else {
			log.Error("exit", zap.Error(err))
		}
		os.Exit(1)
	}
}
