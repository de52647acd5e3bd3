package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// environment is what a reader needs to compare two reports.
type environment struct {
	cores, maxprocs       int
	goVersion, k8sVersion string
	loadBefore, loadAfter string
	took                  time.Duration
}

// report prints every round, then the table of medians.
func report(w io.Writer, o Options, env environment, res *results) {
	fmt.Fprintf(w, "\nKeyport proxy bench: %d cores (GOMAXPROCS %d), %s, Kubernetes %s, load average %s before, %s after, run took %s\n",
		env.cores, env.maxprocs, env.goVersion, env.k8sVersion, env.loadBefore, env.loadAfter, env.took.Round(time.Second))

	fmt.Fprintf(w, "\nRounds (interleaved direct, keyport, bare, direct, …; bare is the reference Go reverse proxy, GET only):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "round\tpath\tGET req/s\tp50\tp99\tCPU/GET here\tAPI server+etcd CPU/GET\t1-client p50\t1-client p99\tLIST MiB/s\tLIST p50\n")
	for i := range o.Rounds {
		for j, name := range []string{"direct", "keyport", "bare"}[:len(res.get)] {
			g, one := res.get[j][i], res.single[j][i]
			list := "-\t-"
			if j < len(res.list) {
				l := res.list[j][i]
				list = fmt.Sprintf("%.1f\t%s", mib(l.bytesPerSecond()), ms(l.quantile(0.5)))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, name, g.perSecond(), ms(g.quantile(0.5)), ms(g.quantile(0.99)),
				us(g.cpuPerRequest()), us(g.cpCPUPerRequest()), ms(one.quantile(0.5)), ms(one.quantile(0.99)), list)
		}
	}
	_ = tw.Flush()

	var (
		getRate, p50, p99, cpu [3]float64
		reads, writes          [3]float64
		cpCPU                  [3]float64
		listRate, listP50      [3]float64
		oneP50, oneP99         [3]float64
	)
	for j := range res.get {
		getRate[j] = median(each(res.get[j], roundResult.perSecond))
		p50[j] = float64(median(each(res.get[j], func(r roundResult) time.Duration { return r.quantile(0.5) })))
		p99[j] = float64(median(each(res.get[j], func(r roundResult) time.Duration { return r.quantile(0.99) })))
		cpu[j] = float64(median(each(res.get[j], roundResult.cpuPerRequest)))
		reads[j] = median(each(res.get[j], roundResult.readsPerRequest))
		writes[j] = median(each(res.get[j], roundResult.writesPerRequest))
		cpCPU[j] = float64(median(each(res.get[j], roundResult.cpCPUPerRequest)))
		// One client's rounds are short of samples for a p99 each (a few hundred
		// requests per path): the quantiles are of all its rounds' requests together.
		all := pooled(res.single[j])
		oneP50[j], oneP99[j] = float64(all.quantile(0.5)), float64(all.quantile(0.99))
	}
	for j := range res.list {
		listRate[j] = median(each(res.list[j], roundResult.bytesPerSecond))
		listP50[j] = float64(median(each(res.list[j], func(r roundResult) time.Duration { return r.quantile(0.5) })))
	}
	keyportRatios := roundRatios(res.get, 1)
	d := func(f float64) time.Duration { return time.Duration(f) }

	fmt.Fprintf(w, "\nMedians of %d rounds:\n", o.Rounds)
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " metric\t direct\t through Keyport\t ratio (keyport/direct) or added")
	fmt.Fprintf(tw, " GET pod, %d clients, %s rounds (req/s)\t %.0f\t %.0f\t %s\n", o.Clients, o.Duration, getRate[0], getRate[1], spread(keyportRatios))
	fmt.Fprintf(tw, " GET p50 latency, %d clients\t %s\t %s\t %s\n", o.Clients, ms(d(p50[0])), ms(d(p50[1])), signedMS(d(p50[1]-p50[0])))
	fmt.Fprintf(tw, " GET p99 latency, %d clients\t %s\t %s\t %s added p99\n", o.Clients, ms(d(p99[0])), ms(d(p99[1])), signedMS(d(p99[1]-p99[0])))
	fmt.Fprintf(tw, " GET p50 latency, 1 client\t %s\t %s\t %s\n", ms(d(oneP50[0])), ms(d(oneP50[1])), signedMS(d(oneP50[1]-oneP50[0])))
	fmt.Fprintf(tw, " GET p99 latency, 1 client\t %s\t %s\t %s added p99\n", ms(d(oneP99[0])), ms(d(oneP99[1])), signedMS(d(oneP99[1]-oneP99[0])))
	fmt.Fprintf(tw, " LIST %d ConfigMaps, JSON (MiB/s)\t %.1f\t %.1f\t %.2f\n", o.ConfigMaps, mib(listRate[0]), mib(listRate[1]), ratio(listRate[1], listRate[0]))
	fmt.Fprintf(tw, " LIST %d ConfigMaps, p50 per LIST\t %s\t %s\t %s\n", o.ConfigMaps, ms(d(listP50[0])), ms(d(listP50[1])), signedMS(d(listP50[1]-listP50[0])))
	fmt.Fprintf(tw, " RSS growth, %d idle watches (MiB)\t %.1f (client)\t %.1f (client+proxy)\t %+.1f MiB proxy = %.1f KiB/watch\n", o.Watches,
		mib(float64(res.watchRSS[0])), mib(float64(res.watchRSS[1])), mib(float64(res.watchRSS[1]-res.watchRSS[0])),
		float64(res.watchRSS[1]-res.watchRSS[0])/1024/float64(o.Watches))
	fmt.Fprintf(tw, " goroutines, %d idle watches\t %d\t %d\t %+.1f per watch\n", o.Watches, res.watchGoroutines[0], res.watchGoroutines[1],
		float64(res.watchGoroutines[1]-res.watchGoroutines[0])/float64(o.Watches))
	fmt.Fprintf(tw, " CPU per GET, this process (µs)\t %s (client)\t %s (client+proxy)\t %s proxy\n", us(d(cpu[0])), us(d(cpu[1])), signedUS(d(cpu[1]-cpu[0])))
	fmt.Fprintf(tw, " write / read syscalls per GET, this process\t %.1f / %.1f (client)\t %.1f / %.1f (client+proxy)\t %+.1f / %+.1f proxy\n",
		writes[0], reads[0], writes[1], reads[1], writes[1]-writes[0], reads[1]-reads[0])
	fmt.Fprintf(tw, " CPU per GET, kube-apiserver + etcd (µs)\t %s\t %s\t %.2f\n", us(d(cpCPU[0])), us(d(cpCPU[1])), ratio(cpCPU[1], cpCPU[0]))
	_ = tw.Flush()
	if len(res.get) > 2 {
		fmt.Fprintf(w, "\nReference, measured in the same rounds: a bare Go httputil.ReverseProxy in this process (TLS and HTTP/2\n"+
			"on both sides, the same impersonation headers; no client certificate, authorisation or audit):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
		fmt.Fprintln(tw, " metric\t bare Go proxy\t through Keyport")
		bareRatios := roundRatios(res.get, 2)
		fmt.Fprintf(tw, " GET pod, %d clients (ratio to direct)\t %s\t %s\n", o.Clients, spread(bareRatios), spread(keyportRatios))
		fmt.Fprintf(tw, " GET p99 latency, 1 client (added)\t %s\t %s\n", signedMS(d(oneP99[2]-oneP99[0])), signedMS(d(oneP99[1]-oneP99[0])))
		fmt.Fprintf(tw, " CPU per GET, proxy (µs)\t %s\t %s\n", signedUS(d(cpu[2]-cpu[0])), signedUS(d(cpu[1]-cpu[0])))
		fmt.Fprintf(tw, " write / read syscalls per GET, proxy\t %+.1f / %+.1f\t %+.1f / %+.1f\n",
			writes[2]-writes[0], reads[2]-reads[0], writes[1]-writes[0], reads[1]-reads[0])
		fmt.Fprintf(tw, " CPU per GET, kube-apiserver + etcd (to direct)\t %s (%.2f)\t %s (%.2f)\n",
			us(d(cpCPU[2])), ratio(cpCPU[2], cpCPU[0]), us(d(cpCPU[1])), ratio(cpCPU[1], cpCPU[0]))
		_ = tw.Flush()
	}
	if cpu[1] > cpu[0] && cpCPU[0] > 0 {
		// On a machine where Keyport competes with the API server for the same cores, a
		// CPU-bound run cannot do better than the share of CPU the proxy leaves.
		ceiling := (cpCPU[0] + cpu[0]) / (cpCPU[0] + cpu[1])
		fmt.Fprintf(w, "\nRough CPU ceiling: if these processes had the cores to themselves and were CPU-bound, the ratio could\n"+
			"reach at most (API server+etcd + client) / (API server+etcd + client + proxy) = %.2f; the proxy's %s per GET is\n"+
			"%.0f%% of the control plane's %s. (A machine shared with other work dilutes this.)\n",
			ceiling, us(d(cpu[1]-cpu[0])), 100*(cpu[1]-cpu[0])/cpCPU[0], us(d(cpCPU[0])))
	}

	fmt.Fprintf(w, "\n%s", verdict(median(keyportRatios), d(oneP99[1]-oneP99[0]), d(p99[1]-p99[0]), o.Clients))

	fmt.Fprintln(w, `
Notes: the client and Keyport (proxy, auth, SQLite audit log) run in this one process; etcd, kube-apiserver,
kube-controller-manager and kwok are separate processes on the same cores. "CPU per GET, this process" is
getrusage of this process: the direct column is the client alone, the Keyport column client + proxy, and the
difference is the proxy. API server+etcd CPU comes from /proc/<pid>/stat (10 ms ticks) and includes their idle
load, which a slower round spreads over fewer requests. With 16 closed-loop clients, latency is about
16 / throughput; the 1-client rows show the latency the extra hop adds without queueing. The direct client is
the admin certificate with Impersonate-User bench-user and Impersonate-Group editor and system:authenticated,
the impersonation Keyport sends. Medians are per metric over the rounds; the GET throughput ratios are the
median of each round's ratio to the direct rounds before and after it, the other ratios are of the medians.
The 1-client rows come from one client sending its GETs to the paths in turn, so all paths share each moment;
their p50 and p99 are over the requests of all rounds together.`)
}

// Targets of the proxy (issue 5): GET throughput through Keyport at least minRatio of
// direct (goalRatio is the project's goal), and at most maxAddedP99 added to the p99 of
// a GET.
const (
	minRatio    = 0.85
	goalRatio   = 0.95
	maxAddedP99 = time.Millisecond
)

// verdict says whether this run met the targets. The added p99 is the one-client
// measure: the latency the hop adds. At 16 closed-loop clients on a CPU-bound machine a
// request's latency is about clients / throughput, so there the added p99 is the
// throughput ratio again, as queueing, and it is shown for reference only. The values
// are printed one digit finer than the table's, so that one just short of a target
// (0.846, +1.004 ms) does not read as the target itself.
func verdict(getRatio float64, oneClientAddedP99, queuedAddedP99 time.Duration, clients int) string {
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	goal := "goal met"
	if getRatio < goalRatio {
		goal = fmt.Sprintf("goal %.2f not met", goalRatio)
	}
	return fmt.Sprintf("Targets (missing them does not fail the run):\n"+
		"  GET throughput ratio >= %.2f: %.3f, %s (%s)\n"+
		"  added p99 <= %s, one client (the hop's own latency): %+.3f ms, %s\n"+
		"  (the added p99 at %d clients, %s, is queueing behind the lower throughput, not a target)\n",
		minRatio, getRatio, met(getRatio >= minRatio), goal,
		ms(maxAddedP99), float64(oneClientAddedP99)/1e6, met(oneClientAddedP99 <= maxAddedP99),
		clients, signedMS(queuedAddedP99))
}

// roundRatios are path j's per-round throughput ratios to direct (path 0). The ratio the
// reports give is the median of these: each round is read against the direct rounds on
// either side of it (the one before and the one after; the last has only the one before),
// so load that drifts over the run cancels out better than in a ratio of medians, and no
// path gains from always following the same one. The range shows how much a single round
// moves.
func roundRatios(rounds [][]roundResult, j int) []float64 {
	var out []float64
	direct := rounds[0]
	for i := range direct {
		ref := direct[i].perSecond()
		if i+1 < len(direct) {
			ref = (ref + direct[i+1].perSecond()) / 2
		}
		out = append(out, ratio(rounds[j][i].perSecond(), ref))
	}
	return out
}

// spread is a median of per-round ratios with the middle half of the rounds and the whole
// range: single rounds on a shared machine swing by a third (a slow second of the control
// plane's), so the middle half says how far the median can be trusted.
func spread(rs []float64) string {
	s := slices.Clone(rs)
	slices.Sort(s)
	q := func(f float64) float64 { return s[int(f*float64(len(s)-1)+0.5)] }
	return fmt.Sprintf("%.2f (median of %d rounds; middle half %.2f–%.2f, all %.2f–%.2f)", median(s), len(s), q(0.25), q(0.75), s[0], s[len(s)-1])
}

// pooled merges rounds' latencies into one sorted sample.
func pooled(rs []roundResult) roundResult {
	var all roundResult
	for _, r := range rs {
		all.latencies = append(all.latencies, r.latencies...)
		all.requests += r.requests
	}
	slices.Sort(all.latencies)
	return all
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mib(bytes float64) float64 { return bytes / (1 << 20) }

func ms(d time.Duration) string       { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func us(d time.Duration) string       { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
func signedMS(d time.Duration) string { return fmt.Sprintf("%+.2f ms", float64(d)/1e6) }
func signedUS(d time.Duration) string { return fmt.Sprintf("%+.0f µs", float64(d)/1e3) }
