package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/postgres"
	"go.uber.org/zap"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identitystore"
)

// OperatorUsage is the help of the operator command.
const OperatorUsage = `usage: gateway operator <command>

Grants and revokes platform operator rights; reads DATABASE_URL like the server.

commands:
  grant <email>    make the user with this email a platform operator
  revoke <email>   take platform operator rights from the user
  list             list the platform operators`

// UsageError is an operator command line that makes no sense; main prints it with the usage.
type UsageError struct{ Reason string }

func (e *UsageError) Error() string { return e.Reason }

// OperatorConfig is what the operator command reads.
type OperatorConfig struct {
	config.Base
	config.Database
}

// Operator runs `gateway operator <args>`: the only way to make a platform operator is a
// command run on the server, never an API call. Results go to out.
func Operator(ctx context.Context, log *zap.Logger, env config.Source, args []string, out io.Writer) error {
	if len(args) == 0 {
		return &UsageError{Reason: "a command is required"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "grant", "revoke":
		if len(rest) != 1 {
			return &UsageError{Reason: cmd + " takes one email address"}
		}
	case "list":
		if len(rest) != 0 {
			return &UsageError{Reason: "list takes no arguments"}
		}
	default:
		return &UsageError{Reason: fmt.Sprintf("unknown command %q", cmd)}
	}

	var cfg OperatorConfig
	if err := config.Load(&cfg, env); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pool, err := postgres.Connect(ctx, cfg.Database, Service+"-operator", log)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer pool.Close()
	admin := identity.NewOperatorAdmin(identitystore.New(pool))

	switch cmd {
	case "grant":
		op, err := admin.GrantOperator(ctx, rest[0], grantor())
		if err != nil {
			return operatorError(err)
		}
		_, err = fmt.Fprintf(out, "%s (%s) is a platform operator since %s\n", op.Email, op.UserID, op.GrantedAt.UTC().Format(time.RFC3339))
		return err
	case "revoke":
		if err := admin.RevokeOperator(ctx, rest[0]); err != nil {
			return operatorError(err)
		}
		_, err := fmt.Fprintf(out, "%s is no longer a platform operator\n", rest[0])
		return err
	default:
		ops, err := admin.Operators(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "EMAIL\tUSER ID\tGRANTED AT\tGRANTED BY")
		for _, op := range ops {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", op.Email, op.UserID, op.GrantedAt.UTC().Format(time.RFC3339), op.GrantedBy)
		}
		return tw.Flush()
	}
}

// operatorError words the errors a command line can cause for the person who typed it.
func operatorError(err error) error {
	var verr *identity.ValidationError
	var nf *identity.NotFoundError
	switch {
	case errors.As(err, &verr):
		return &UsageError{Reason: verr.Error()}
	case errors.As(err, &nf):
		return errors.New("no " + nf.Resource + " with this email")
	}
	return err
}

// grantor names who ran the command, for the record: the OS user and host.
func grantor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return "cli:" + name + "@" + host
}
