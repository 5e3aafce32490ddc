// Package command is the operator's side of the flexblock binary: the
// install, uninstall and doctor commands, wired to the installer.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flexblock/flexblock/driver/config"
	"github.com/flexblock/flexblock/driver/volume"
	"github.com/flexblock/flexblock/installer"
	"github.com/flexblock/flexblock/installer/doctor"
)

// Commands returns install, uninstall and doctor for a binary that serves
// these backends.
func Commands(all []volume.Backend) []*cli.Command {
	names, tools := make([]string, len(all)), map[string][]string{}
	for i, b := range all {
		names[i], tools[b.Name()] = b.Name(), b.Tools()
	}
	return []*cli.Command{installCommand(names), uninstallCommand(), doctorCommand(names, tools)}
}

func env(name string) []string { return []string{"FLEXBLOCK_" + name} }

func pluginDirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "plugin-dir", EnvVars: env("PLUGIN_DIR"), Usage: "kubelet's FlexVolume plugin dir (default: the running kubelet's --volume-plugin-dir or volumePluginDir, else " + installer.DefaultPluginDir + ")"},
		&cli.StringFlag{Name: "proc-root", EnvVars: env("PROC_ROOT"), Value: installer.DefaultProcRoot, Usage: "where to look for the kubelet process (the host's /proc: run the pod with hostPID)"},
	}
}

func installCommand(backends []string) *cli.Command {
	flags := append(pluginDirFlags(),
		&cli.StringFlag{Name: "source", EnvVars: env("SOURCE"), Usage: "executable to install (default: this one)"},
		&cli.BoolFlag{Name: "once", EnvVars: env("ONCE"), Usage: "install, self-test and exit (init container); default: stay running, repair the install and follow the driver log"},
		&cli.DurationFlag{Name: "interval", EnvVars: env("INTERVAL"), Value: 3 * time.Second, Usage: "how often the running installer checks the installed files"},
		&cli.BoolFlag{Name: "follow-log", EnvVars: env("FOLLOW_LOG"), Value: true, Usage: "copy the driver log to stdout while running"},
		&cli.BoolFlag{Name: "attach", EnvVars: env("ATTACH"), Usage: "driver config attach: use kubelet's attach/detach flow (install on control-plane nodes too)"},
		&cli.BoolFlag{Name: "fs-group", EnvVars: env("FS_GROUP"), Value: true, Usage: "capability fsGroup: let kubelet chown volumes to the pod's fsGroup"},
		&cli.BoolFlag{Name: "selinux-relabel", EnvVars: env("SELINUX_RELABEL"), Value: true, Usage: "capability selinuxRelabel"},
		&cli.StringFlag{Name: "log-file", EnvVars: env("LOG_FILE"), Value: config.DefaultLogFile, Usage: "driver log file (node path)"},
		&cli.Int64Flag{Name: "log-max-bytes", EnvVars: env("LOG_MAX_BYTES"), Usage: "rotate the driver log at this size (0: 10 MiB)"},
		&cli.StringFlag{Name: "state-dir", EnvVars: env("STATE_DIR"), Value: config.DefaultStateDir, Usage: "driver state dir (node path, tmpfs)"},
		&cli.StringFlag{Name: "kubelet-root", EnvVars: env("KUBELET_ROOT"), Usage: "the only kubelet root dir the driver accepts in kubelet's paths (default: the running kubelet's --root-dir, else derived from each path)"},
		&cli.StringFlag{Name: "default-fs-type", EnvVars: env("DEFAULT_FS_TYPE"), Usage: "filesystem for volumes without fsType (ext4, ext3, xfs, btrfs; default ext4)"},
		&cli.StringSliceFlag{Name: "timeout", EnvVars: env("TIMEOUTS"), Usage: "per-tool timeout TOOL=DURATION, repeatable (env: comma-separated), e.g. rbd=2m; tools: rbd, iscsiadm, mount, mkfs.ext4, ..., lock, default"},
		&cli.DurationFlag{Name: "call-deadline", EnvVars: env("CALL_DEADLINE"), Usage: "bound of one whole driver call, every tool inside it (10s..30m; 0: " + config.DefaultCallDeadline.String() + ")"},
		&cli.BoolFlag{Name: "nsenter", EnvVars: env("NSENTER"), Usage: "run every tool in the host's mount namespace (kubelet in a container)"},
		&cli.StringFlag{Name: "rbd-monitors", EnvVars: env("RBD_MONITORS"), Usage: "default Ceph monitors for volumes without a monitors option"},
		&cli.StringFlag{Name: "rbd-keyring", EnvVars: env("RBD_KEYRING"), Usage: "node-local Ceph keyring (node path), used when no Secret is given (attach mode)"},
		&cli.StringSliceFlag{Name: "rbd-keyring-dir", EnvVars: env("RBD_KEYRING_DIRS"), Usage: "node dir whose keyring files the volume option keyring may name, repeatable (default: none, the option is refused)"},
		&cli.StringFlag{Name: "rbd-user", EnvVars: env("RBD_USER"), Usage: "default cephx user"},
		&cli.BoolFlag{Name: "rbd-allow-force-unmap", EnvVars: env("RBD_ALLOW_FORCE_UNMAP"), Usage: "allow rbd unmap -o force for a stuck device"},
		&cli.StringFlag{Name: "iscsi-credentials-file", EnvVars: env("ISCSI_CREDENTIALS_FILE"), Usage: "node-local JSON file of CHAP keys (node path), used when no Secret is given (attach mode)"},
		&cli.StringFlag{Name: "iscsi-records-dir", EnvVars: env("ISCSI_RECORDS_DIR"), Usage: "persistent node dir for the markers of the iSCSI records flexblock makes (default " + config.DefaultRecordsDir + ")"},
		&cli.DurationFlag{Name: "iscsi-device-timeout", EnvVars: env("ISCSI_DEVICE_TIMEOUT"), Usage: "how long to wait for a LUN's device after login (0: 30s)"},
	)
	return &cli.Command{
		Name:  "install",
		Usage: "install the drivers into kubelet's plugin dir (atomic, idempotent, self-tested); stays running unless --once",
		Description: "Copies this executable to <plugin dir>/flexblock~rbd/rbd and <plugin dir>/flexblock~iscsi/iscsi " +
			"with a flexblock.json config from the flags, then runs each installed copy's init and fails unless it answers Success.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("install takes no arguments (got %q)", c.Args().Slice())
			}
			cfg, err := configFromFlags(c)
			if err != nil {
				return err
			}
			if cfg.KubeletRoot == "" {
				// Safe by default: the driver then accepts kubelet's own
				// root only, not any path of the right shape.
				if det := installer.Detect(c.String("proc-root"), "/"); det.RootDir != "" {
					cfg.KubeletRoot = det.RootDir
					fmt.Printf("installer: kubelet root %s (kubelet pid %d)\n", det.RootDir, det.KubeletPID)
				}
			}
			src := c.String("source")
			if src == "" {
				if src, err = os.Executable(); err != nil {
					return fmt.Errorf("cannot find this executable: %w (pass --source)", err)
				}
			}
			res, err := resolve(c)
			if err != nil {
				return err
			}
			o := installer.Options{PluginDir: res.Dir, MustExist: res.FromKubelet, Source: src, Backends: backends, Config: cfg}
			if c.Bool("once") {
				r, err := installer.Install(o)
				if r != nil {
					installer.Report(os.Stdout, r)
				}
				if err != nil {
					return err
				}
				fmt.Printf("installer: drivers %s installed in %s and answer init\n", driverNames(backends), res.Dir)
				return nil
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			logFile := ""
			if c.Bool("follow-log") {
				logFile = cfg.LogFile
			}
			return installer.Serve(ctx, o, logFile, os.Stdout, c.Duration("interval"))
		},
	}
}

func driverNames(backends []string) string {
	var n []string
	for _, b := range backends {
		n = append(n, installer.DriverName(b))
	}
	return strings.Join(n, ", ")
}

// resolve picks the plugin dir and says which and why.
func resolve(c *cli.Context) (installer.Resolved, error) {
	res, err := installer.ResolvePluginDir(c.String("plugin-dir"), c.String("proc-root"))
	if err != nil {
		return res, err
	}
	for _, w := range res.Warnings {
		fmt.Println("installer: WARNING:", w)
	}
	fmt.Printf("installer: plugin dir %s (%s)\n", res.Dir, res.From)
	return res, nil
}

func configFromFlags(c *cli.Context) (config.Config, error) {
	fsGroup, relabel := c.Bool("fs-group"), c.Bool("selinux-relabel")
	cfg := config.Config{
		Attach:         c.Bool("attach"),
		FSGroup:        &fsGroup,
		SELinuxRelabel: &relabel,
		LogFile:        c.String("log-file"),
		LogMaxBytes:    c.Int64("log-max-bytes"),
		StateDir:       c.String("state-dir"),
		KubeletRoot:    c.String("kubelet-root"),
		DefaultFSType:  c.String("default-fs-type"),
		Nsenter:        c.Bool("nsenter"),
		Deadline:       config.Duration(c.Duration("call-deadline")),
		RBD: config.RBD{
			KeyringDirs:     c.StringSlice("rbd-keyring-dir"),
			DefaultMonitors: c.String("rbd-monitors"),
			Keyring:         c.String("rbd-keyring"),
			User:            c.String("rbd-user"),
			AllowForceUnmap: c.Bool("rbd-allow-force-unmap"),
		},
		ISCSI: config.ISCSI{
			CredentialsFile: c.String("iscsi-credentials-file"),
			DeviceTimeout:   config.Duration(c.Duration("iscsi-device-timeout")),
			RecordsDir:      c.String("iscsi-records-dir"),
		},
	}
	t, err := installer.ParseTimeouts(c.StringSlice("timeout"))
	if err != nil {
		return cfg, err
	}
	cfg.Timeouts = t
	return cfg, nil
}

func uninstallCommand() *cli.Command {
	return &cli.Command{
		Name:  "uninstall",
		Usage: "remove the drivers from kubelet's plugin dir; refuses while volumes are still in use on this node",
		Flags: append(pluginDirFlags(),
			&cli.StringSliceFlag{Name: "state-dir", EnvVars: env("STATE_DIR"), Value: cli.NewStringSlice(config.DefaultStateDir), Usage: "state dir(s) to look for volumes in use, besides each installed driver's"},
			&cli.BoolFlag{Name: "force", Usage: "remove the drivers even though volumes are in use (their unmount then fails until you clean up by hand)"},
			&cli.BoolFlag{Name: "wait", EnvVars: env("WAIT"), Usage: "retry until no volume is in use, uninstall, then stay idle until terminated (for a DaemonSet)"},
			&cli.DurationFlag{Name: "interval", EnvVars: env("INTERVAL"), Value: 10 * time.Second, Usage: "retry interval with --wait"},
		),
		Action: func(c *cli.Context) error {
			res, err := resolve(c)
			if err != nil {
				return err
			}
			o := installer.UninstallOptions{PluginDir: res.Dir, MustExist: res.FromKubelet, StateDirs: c.StringSlice("state-dir"), Force: c.Bool("force")}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			for {
				r, err := installer.Uninstall(o)
				var inUse *installer.InUseError
				if err != nil && (!c.Bool("wait") || !errors.As(err, &inUse)) {
					return err
				}
				if err == nil {
					for _, v := range r.InUse {
						fmt.Println("installer: WARNING (--force):", v)
					}
					for _, p := range r.Removed {
						fmt.Println("installer: removed", p)
					}
					fmt.Printf("installer: flexblock drivers uninstalled from %s\n", res.Dir)
					if !c.Bool("wait") {
						return nil
					}
					fmt.Println("installer: idle until terminated")
					<-ctx.Done()
					return nil
				}
				fmt.Printf("installer: %v\ninstaller: retrying in %s\n", err, c.Duration("interval"))
				select {
				case <-ctx.Done():
					return errors.New("terminated before the volumes were released; nothing removed")
				case <-time.After(c.Duration("interval")):
				}
			}
		},
	}
}

func doctorCommand(known []string, tools map[string][]string) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check this node for everything flexblock needs; one verdict and fix per line; exit 1 when something required is missing",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.StringFlag{Name: "root", Value: "/", Usage: "the node's root filesystem (e.g. /host under kubectl debug node/NAME)"},
			&cli.StringFlag{Name: "plugin-dir", EnvVars: env("PLUGIN_DIR"), Usage: "plugin dir (node path; default: the kubelet's, else " + installer.DefaultPluginDir + ")"},
			&cli.StringSliceFlag{Name: "backend", Usage: "judge only these backends (rbd, iscsi; default both)"},
			&cli.StringFlag{Name: "log-file", Usage: "driver log file (node path; default: from the installed config)"},
			&cli.StringFlag{Name: "state-dir", Usage: "driver state dir (node path; default: from the installed config)"},
		},
		Action: func(c *cli.Context) error {
			backends := c.StringSlice("backend")
			for _, b := range backends {
				if !slices.Contains(known, b) {
					return fmt.Errorf("unknown backend %q (have %s)", b, strings.Join(known, ", "))
				}
			}
			r := doctor.Run(doctor.Options{
				Root: c.String("root"), PluginDir: c.String("plugin-dir"), Backends: backends, Tools: tools,
				LogFile: c.String("log-file"), StateDir: c.String("state-dir"),
			})
			var err error
			if c.Bool("json") {
				err = r.WriteJSON(os.Stdout)
			} else {
				err = r.WriteTable(os.Stdout)
			}
			if err != nil {
				return err
			}
			if !r.OK {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}
