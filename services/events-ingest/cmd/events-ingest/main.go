// Command events-ingest takes in engagement events (sent, delivered, open, click, bounce,
// complaint, unsubscribe) over gRPC and stores them durably and idempotently.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/logging"
	"github.com/heraldmail/herald/services/events-ingest/internal/app"
	"go.uber.org/zap"
)

func main() {
	log := logging.Bootstrap(app.Service, os.LookupEnv)
	if err := app.Run(context.Background(), log, config.OS()); err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "events-ingest: configuration: %s\n", cerr)
		} else {
			log.Error("exit", zap.Error(err))
		}
		os.Exit(1)
	}
}
