// Command flexblock-provisioner is the dynamic provisioner of flexblock's
// RBD volumes (StorageClass provisioner flexblock.io/rbd): it creates a
// stamped RBD image and a flexVolume PV for each claim, removes the image
// when a PV with reclaimPolicy Delete is released, and grows the image of
// a claim whose size is raised. One replica works at a time (a lease); the
// others wait to take over. It runs `rbd` exactly as the node driver does,
// through the driver's own runner and keyfile code.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	lib "sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller/metrics"

	"github.com/flexblock/flexblock/driver/logging"
	"github.com/flexblock/flexblock/provisioner/internal/controller"
	"github.com/flexblock/flexblock/provisioner/internal/image"
	"github.com/flexblock/flexblock/provisioner/internal/params"
	"github.com/flexblock/flexblock/provisioner/internal/resizer"
	"github.com/flexblock/flexblock/provisioner/internal/secrets"
)

var version = "dev"

type flags struct {
	kubeconfig  string
	stateDir    string
	metrics     string
	trashDelay  time.Duration
	leaseNS     string
	workers     int
	showVersion bool
}

func main() {
	var f flags
	klog.InitFlags(nil)
	flag.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster ServiceAccount)")
	flag.StringVar(&f.stateDir, "state-dir", "/run/flexblock-provisioner", "private dir for rbd's key files and working dir (0700, created)")
	flag.StringVar(&f.metrics, "metrics-address", ":8080", "host:port serving Prometheus /metrics and /healthz (empty: off)")
	flag.DurationVar(&f.trashDelay, "trash-delay", 0, "on Delete, move the image to the RBD trash protected for this long instead of removing it (0: rbd rm)")
	flag.StringVar(&f.leaseNS, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader election lease (default: $POD_NAMESPACE)")
	flag.IntVar(&f.workers, "workers", lib.DefaultThreadiness, "claims and volumes handled at once")
	flag.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if f.showVersion {
		fmt.Println("flexblock-provisioner", version)
		return
	}
	if err := run(f); err != nil {
		klog.ErrorS(err, "flexblock-provisioner stopped")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
}

func run(f flags) error {
	// One log for all: the library's klog lines and ours (slog through
	// klog), readable in kubectl logs.
	log := slog.New(logr.ToSlogHandler(klog.Background()))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if f.leaseNS == "" {
		return fmt.Errorf("no namespace for the leader election lease: set POD_NAMESPACE (downward API) or --leader-election-namespace")
	}

	mask := &logging.Masker{}
	tools := image.NewTools(image.NewExec(mask, log, f.stateDir), mask, log, f.stateDir)
	reader := &secrets.Reader{Client: client}
	prov := &controller.Provisioner{Tools: tools, Secrets: reader, Log: log, TrashDelay: f.trashDelay, Now: time.Now}

	m := metrics.New("controller")
	if f.metrics != "" {
		if err := serveMetrics(ctx, f.metrics, m, log); err != nil {
			return err
		}
	}

	id := identity()
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "flexblock-provisioner"})

	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, f.leaseNS, "flexblock.io-rbd",
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id, EventRecorder: recorder})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	log.Info("starting", "version", version, "provisioner", params.Provisioner, "identity", id, "lease", f.leaseNS+"/flexblock.io-rbd", "trashDelay", f.trashDelay.String())
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   lib.DefaultLeaseDuration,
		RenewDeadline:   lib.DefaultRenewDeadline,
		RetryPeriod:     lib.DefaultRetryPeriod,
		ReleaseOnCancel: true,
		Name:            params.Provisioner,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("leading: provisioning, deleting and resizing")
				lead(ctx, client, prov, tools, reader, recorder, m, f.workers, log)
			},
			OnStoppedLeading: func() {
				// Work in flight belongs to the next leader now: exit so
				// nothing of ours runs beside it.
				log.Info("not leading any more, exiting")
				klog.FlushAndExit(klog.ExitFlushTimeout, 0)
			},
			OnNewLeader: func(identity string) {
				if identity != id {
					log.Info("waiting: another replica leads", "leader", identity)
				}
			},
		},
	})
	return nil
}

// lead runs the provisioner library's controller and the resizer while
// this replica holds the lease.
func lead(ctx context.Context, client kubernetes.Interface, prov *controller.Provisioner, tools *image.Tools,
	reader *secrets.Reader, recorder record.EventRecorder, m metrics.Metrics, workers int, log *slog.Logger) {
	factory := informers.NewSharedInformerFactory(client, lib.DefaultResyncPeriod)
	rs, err := (&resizer.Resizer{Client: client, Tools: tools, Secrets: reader, Log: log, Events: recorder}).Watch(factory)
	if err != nil {
		log.Error("resizer not started", "error", err.Error())
	}
	pc := lib.NewProvisionController(ctx, client, params.Provisioner, prov,
		lib.LeaderElection(false), // our lease covers the resizer too
		lib.AddFinalizer(true),
		lib.Threadiness(workers),
		lib.FailedProvisionThreshold(0), // retry until the claim is fixed or deleted
		lib.FailedDeleteThreshold(0),
		lib.MetricsInstance(m),
		lib.ClaimsInformer(factory.Core().V1().PersistentVolumeClaims().Informer()),
		lib.VolumesInformer(factory.Core().V1().PersistentVolumes().Informer()),
		lib.ClassesInformer(factory.Storage().V1().StorageClasses().Informer()),
	)
	factory.Start(ctx.Done())
	if rs != nil {
		go rs.Run(ctx)
	}
	pc.Run(ctx)
}

// serveMetrics serves the library's Prometheus metrics and /healthz from
// every replica (the library would serve them only from the leader).
func serveMetrics(ctx context.Context, addr string, m metrics.Metrics, log *slog.Logger) error {
	host, port, err := net.SplitHostPort(addr)
	if _, perr := strconv.Atoi(port); err != nil || perr != nil {
		return fmt.Errorf("--metrics-address %q: want host:port, e.g. :8080", addr)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.PersistentVolumeClaimProvisionTotal, m.PersistentVolumeClaimProvisionFailedTotal,
		m.PersistentVolumeClaimProvisionDurationSeconds, m.PersistentVolumeDeleteTotal,
		m.PersistentVolumeDeleteFailedTotal, m.PersistentVolumeDeleteDurationSeconds)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server stopped", "error", err.Error())
		}
	}()
	log.Info("serving metrics", "address", ln.Addr().String())
	return nil
}

// identity names this replica in the lease (and so in `kubectl get lease`):
// the pod's name ($POD_NAME, downward API) or else the host name, which
// with hostNetwork is the node's and the same for every replica there,
// then a unique suffix.
func identity() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	return name + "_" + string(uuid.NewUUID())
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config (or give --kubeconfig): %w", err)
	}
	return cfg, nil
}
