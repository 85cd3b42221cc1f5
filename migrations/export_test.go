package migrations

import (
	"context"
	"io/fs"

	"go.uber.org/zap"
)

// MigrateSchemaFS applies the migrations under sql/<schema> of files to
// databaseURL the way Up applies those of one owning schema, so that tests
// can run the runner on migrations of their own.
func MigrateSchemaFS(ctx context.Context, databaseURL string, files fs.FS, schema string, log *zap.Logger) error {
	base, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return err
	}
	return migrateSchema(ctx, base, files, schema, log)
}
