// netgrantd is the netgrant system service: it owns org.netgrant.NetGrant1
// on the system bus and creates taps and NAT networks for the users polkit
// allows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/netgrant/netgrant/dbus"
	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service"
	"github.com/netgrant/netgrant/service/config"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0"

func main() {
	configPath := flag.String("config", "/etc/netgrant/netgrant.conf", "configuration `file`, read with the drop-ins of FILE.d; a missing file means the vendor's, or all defaults")
	vendorDir := flag.String("vendor-config-dir", "/usr/lib/netgrant", "`directory` of the distribution's netgrant.conf and netgrant.conf.d, below the administrator's")
	stateDir := flag.String("state-dir", "/run/netgrant", "`directory` for runtime state")
	hooksDir := flag.String("hooks-dir", "/etc/netgrant/hooks.d", "`directory` of up/down hook executables")
	debug := flag.Bool("debug", false, "log debug messages")
	dnsmasqMode := flag.String("dnsmasq", "child", "how to run each network's dnsmasq: `child` of netgrantd, or systemd (instances of the netgrant-dnsmasq@ unit; needs --state-dir=/run/netgrant)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "netgrantd: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	log := newLogger(*debug)
	if *dnsmasqMode != "child" && *dnsmasqMode != "systemd" {
		fmt.Fprintf(os.Stderr, "netgrantd: --dnsmasq=%s: want child or systemd\n", *dnsmasqMode)
		os.Exit(2)
	}
	if err := run(log, *configPath, *vendorDir, *stateDir, *hooksDir, *dnsmasqMode == "systemd"); err != nil {
		log.Error(err.Error())
		daemon.SdNotify(false, "STATUS=Failed: "+err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger, configPath, vendorDir, stateDir, hooksDir string, dnsmasqUnits bool) error {
	cfg, err := config.Load(configPath, vendorDir)
	if err != nil {
		return err
	}
	if dnsmasqUnits && filepath.Clean(stateDir) != dnsmasq.UnitStateDir {
		return fmt.Errorf("--dnsmasq=systemd needs --state-dir=%s, where the netgrant-dnsmasq@ unit looks", dnsmasq.UnitStateDir)
	}
	// Each network's dnsmasq, under an identity of its own, reaches its
	// files through the state directory, whatever umask we run with.
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if err := os.Chmod(stateDir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	fw, err := firewall.New(cfg.FirewallBackend)
	if err != nil {
		log.Warn("no firewall backend: NAT networks are unavailable until nftables or iptables works", "backend", cfg.FirewallBackend, "err", err)
		fw = nil
	} else if err := firewall.RemoveLeftovers(fw); err != nil {
		log.Warn("rules of the other firewall backend are left", "err", err)
	}

	srv := dbus.NewServer(log, version)
	if err := srv.Connect(); err != nil {
		return err
	}
	defer srv.Close()

	manager := service.New(service.Options{
		Config:       cfg,
		StateDir:     stateDir,
		Kernel:       service.Linux(),
		Hooks:        &hooks.Runner{Dir: hooksDir, Timeout: cfg.HookTimeout, Log: log},
		Firewall:     fw,
		Zones:        srv.FirewallZones(),
		Resolver:     srv.Resolver(),
		DnsmasqUnits: dnsmasqUnits,
		Log:          log,
		Observer:     srv,
		ObjectID:     dbus.ObjectID,
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := manager.Run(ctx); err != nil {
		return fmt.Errorf("watching links: %w", err)
	}
	if err := srv.Serve(manager); err != nil {
		return err
	}
	if fw != nil && fw.Backend() == "nftables" {
		watchDocker(ctx, manager, log)
	}
	log.Info("netgrantd ready", "bus_name", names.BusName, "version", version, "firewall", firewallName(fw))
	daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=Serving "+names.BusName)

	stats := make(chan os.Signal, 1)
	signal.Notify(stats, syscall.SIGUSR1)
	idle := time.NewTimer(cfg.IdleExit)
	if cfg.IdleExit == 0 {
		idle.Stop()
	}
	for {
		select {
		case <-srv.Activity():
			if cfg.IdleExit > 0 {
				idle.Reset(cfg.IdleExit)
			}
		case <-idle.C:
			// Still holding something: the activity that ends it re-arms.
			if srv.Busy() || manager.Holds() {
				continue
			}
			log.Info("idle with nothing to watch: exiting; the next call starts netgrantd again", "idle_exit_sec", cfg.IdleExit.Seconds())
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			manager.Shutdown()
			if err := srv.Stop(false); err != nil {
				log.Warn("releasing the bus name", "err", err)
			}
			return nil
		case <-stats:
			logRuntimeStats(log)
		case <-srv.Done():
			manager.Shutdown()
			return errors.New("lost the connection to the system bus")
		case <-ctx.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			manager.Shutdown()
			if err := srv.Stop(true); err != nil {
				log.Warn("releasing the bus name", "err", err)
			}
			return nil
		}
	}
}

// watchDocker puts netgrant's accepts into DOCKER-USER whenever Docker
// makes that chain; a burst of events costs one restore at a time.
func watchDocker(ctx context.Context, manager *service.Manager, log *slog.Logger) {
	restore := make(chan struct{}, 1)
	err := firewall.WatchDocker(ctx, func() {
		select {
		case restore <- struct{}{}:
		default:
		}
	})
	if err != nil {
		log.Warn("not watching for Docker: guests may be cut off when it starts, until netgrant's next change", "err", err)
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-restore:
				log.Info("Docker made DOCKER-USER: putting netgrant's accepts in it")
				manager.RestoreFirewall()
			}
		}
	}()
}

// logRuntimeStats answers SIGUSR1, so leaks can be watched from outside.
func logRuntimeStats(log *slog.Logger) {
	fds, _ := os.ReadDir("/proc/self/fd")
	log.Info("runtime stats", "goroutines", runtime.NumGoroutine(), "fds", len(fds))
}

// newLogger logs to the journal when systemd started us with the journal
// as our output stream, and as text to stderr otherwise.
func newLogger(debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	if h, err := newJournalHandler(level); err == nil {
		return slog.New(h)
	} else if !errors.Is(err, errNoJournal) {
		fmt.Fprintln(os.Stderr, "netgrantd: journal unavailable, logging to stderr:", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func firewallName(fw firewall.Firewall) string {
	if fw == nil {
		return "none"
	}
	return fw.Backend()
}
