// Command ferretdb runs FerretDB v1 (SQLite backend) through its embeddable package, so that the
// local stack gets a MongoDB-wire server built only from the Go module proxy. The stock cmd/ferretdb
// refuses to start when built outside FerretDB's own repository (it wants a generated version.txt);
// the embeddable API has no such check and is FerretDB's supported way to run it from another module.
//
// The process supervises itself, as `restart: unless-stopped` would in Docker: the server runs in a
// child process, and when the child dies of anything but our own stop signal (FerretDB v1's SQLite
// backend can die of SIGBUS when a database is dropped and created again under load: it removes the
// database file but leaves its -wal and -shm files behind), the supervisor moves aside what such a
// crash leaves (databases of one empty page, -wal/-shm files without their database) and starts the
// server again on the same data. Data written before the crash is on disk (SQLite WAL); clients see
// a dropped connection and retry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const childEnv = "DISTRIBUTARY_FERRETDB_CHILD"

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data-dir", "", "directory holding the SQLite databases (required)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: --data-dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: cannot create %s: %v\n", *dataDir, err)
		os.Exit(1)
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: --log-level: %v\n", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if os.Getenv(childEnv) == "" {
		os.Exit(supervise(logger, *dataDir))
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/",
	})
	if err != nil {
		logger.Error("ferretdb did not start", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger.Info("ferretdb listening", "addr", *listen, "data", *dataDir)
	if err := f.Run(ctx); err != nil {
		logger.Error("ferretdb stopped with an error", "error", err)
		os.Exit(1)
	}
}

// supervise runs the server as a child process until SIGINT/SIGTERM, restarting it after a crash.
// More than 10 crashes within 10 minutes end the supervisor with an error (something is broken for good).
func supervise(logger *slog.Logger, dataDir string) int {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	var crashes []time.Time
	for {
		quarantine(logger, dataDir)
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		// The server dies with the supervisor, even of SIGKILL: no orphan holds the port.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			logger.Error("ferretdb server process did not start", "error", err)
			return 1
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case sig := <-signals:
			_ = cmd.Process.Signal(sig)
			<-done
			return 0
		case err := <-done:
			now := time.Now()
			recent := crashes[:0]
			for _, t := range crashes {
				if now.Sub(t) < 10*time.Minute {
					recent = append(recent, t)
				}
			}
			crashes = append(recent, now)
			if len(crashes) > 10 {
				logger.Error("ferretdb crashed more than 10 times in 10 minutes; giving up", "error", err)
				return 1
			}
			logger.Error("ferretdb server process died; restarting it on the same data", "error", err, "crashes", len(crashes))
			select {
			case <-signals:
				return 0
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// quarantine moves aside what a crash can leave and FerretDB v1 cannot start on: a database file of
// one empty page (no _ferretdb_collections table) and no write-ahead log, and -wal/-shm files whose database is gone (a
// dropped database's leftovers, which would be replayed into a new database of the same name).
func quarantine(logger *slog.Logger, dataDir string) {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return
	}
	aside := filepath.Join(filepath.Dir(dataDir), "quarantine")
	move := func(name string) {
		_ = os.MkdirAll(aside, 0o755)
		to := filepath.Join(aside, fmt.Sprintf("%d-%s", time.Now().UnixNano(), name))
		if err := os.Rename(filepath.Join(dataDir, name), to); err == nil {
			logger.Warn("moved aside a file left by a crash or a dropped database", "file", name, "to", to)
		}
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".sqlite"):
			// Small is empty only without a write-ahead log: committed data may still be in the -wal.
			wal, walErr := os.Stat(filepath.Join(dataDir, name+"-wal"))
			if info, err := e.Info(); err == nil && info.Size() <= 4096 && (walErr != nil || wal.Size() == 0) {
				move(name)
				for _, suffix := range []string{"-wal", "-shm"} {
					if _, err := os.Stat(filepath.Join(dataDir, name+suffix)); err == nil {
						move(name + suffix)
					}
				}
			}
		case strings.HasSuffix(name, ".sqlite-wal"), strings.HasSuffix(name, ".sqlite-shm"):
			base := name[:len(name)-4]
			if _, err := os.Stat(filepath.Join(dataDir, base)); os.IsNotExist(err) {
				move(name)
			}
		}
	}
}
