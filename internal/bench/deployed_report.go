package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// maxDeployedGap is issue 27's target: the deployed Keyport's GET ratio at most this
// far below the deployed bare proxy's, measured in the same rounds.
const maxDeployedGap = 0.03

var deployedPaths = []string{"direct", "keyport", "bare"}

// reportDeployed prints the deployed rounds, then both sections' ratios side by side and
// where each path's CPU goes.
func reportDeployed(w io.Writer, o DeployedOptions, env environment, res *deployedResults) {
	fmt.Fprintf(w, "\nKeyport deployed bench: %d cores (GOMAXPROCS %d), %s, Kubernetes %s, load average %s before, %s after, run took %s\n",
		env.cores, env.maxprocs, env.goVersion, env.k8sVersion, env.loadBefore, env.loadAfter, env.took.Round(time.Second))
	fmt.Fprintf(w, "keyport: %s; the bot's Kubernetes identity: %s in %s\n", res.keyport, res.user, strings.Join(res.groups, ", "))

	fmt.Fprintf(w, "\nDeployed rounds (%d GETs each, %d workers in the load process, interleaved direct, keyport, bare, direct, …):\n", o.Requests, o.Workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "round\tpath\tGET req/s\tp50\tp99\tload CPU/GET\tproxy CPU/GET\tAPI server+etcd CPU/GET\tcores busy\n")
	for i := range o.Rounds {
		for j, name := range deployedPaths {
			r := res.deployed[j][i]
			proxy := "-"
			if j > 0 {
				proxy = us(r.per(r.proxy))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.2f\n", i+1, name, r.perSecond(), ms(r.quantile(0.5)), ms(r.quantile(0.99)),
				us(r.per(r.load)), proxy, us(r.per(r.controlPlane)), r.cores())
		}
	}
	_ = tw.Flush()

	deployed := make([][]roundResult, 3)
	for j := range res.deployed {
		for _, r := range res.deployed[j] {
			deployed[j] = append(deployed[j], r.roundResult)
		}
	}
	inK, inB := roundRatios(res.inProcess, 1), roundRatios(res.inProcess, 2)
	deK, deB := roundRatios(deployed, 1), roundRatios(deployed, 2)
	fmt.Fprintf(w, "\nGET throughput through each proxy as a ratio of direct (median of per-round ratios; middle half; range):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " section\t direct req/s\t through Keyport\t bare Go proxy\t Keyport − bare")
	fmt.Fprintf(tw, " in-process (make bench: client and proxies in one process), %d×%s\t %.0f\t %s\t %s\t %+.2f\n", o.InProcessRounds, o.InProcessRound,
		median(each(res.inProcess[0], roundResult.perSecond)), spread(inK), spread(inB), median(inK)-median(inB))
	fmt.Fprintf(tw, " deployed (keyport start, tbot kubeconfig, own load and proxy processes), %d×%d GETs\t %.0f\t %s\t %s\t %+.2f\n", o.Rounds, o.Requests,
		median(each(deployed[0], roundResult.perSecond)), spread(deK), spread(deB), median(deK)-median(deB))
	_ = tw.Flush()

	fmt.Fprintf(w, "\nCPU per GET by process (medians; /proc/<pid>/stat, 10 ms ticks), and how many of the %d cores the processes kept busy:\n", env.cores)
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " section, path\t client\t proxy\t API server+etcd\t total\t cores busy")
	for j, name := range deployedPaths {
		rs := res.inProcess[j]
		client := median(each(res.inProcess[0], roundResult.cpuPerRequest))
		own := median(each(rs, roundResult.cpuPerRequest))
		proxy := "-"
		if j > 0 {
			proxy = signedUS(own - client)
		}
		cp := median(each(rs, roundResult.cpCPUPerRequest))
		fmt.Fprintf(tw, " in-process, %s\t %s\t %s\t %s\t %s\t %.2f\n", name, us(client), proxy, us(cp), us(own+cp),
			median(each(rs, func(r roundResult) float64 { return float64(r.cpu+r.cpCPU) / float64(r.elapsed) })))
	}
	var totals [3]time.Duration
	for j, name := range deployedPaths {
		rs := res.deployed[j]
		load := median(eachD(rs, func(r deployedRound) time.Duration { return r.per(r.load) }))
		proxy := median(eachD(rs, func(r deployedRound) time.Duration { return r.per(r.proxy) }))
		cp := median(eachD(rs, func(r deployedRound) time.Duration { return r.per(r.controlPlane) }))
		totals[j] = median(eachD(rs, func(r deployedRound) time.Duration { return r.per(r.load + r.proxy + r.controlPlane) }))
		p := "-"
		if j > 0 {
			p = us(proxy)
		}
		fmt.Fprintf(tw, " deployed, %s\t %s\t %s\t %s\t %s\t %.2f\n", name, us(load), p, us(cp), us(totals[j]),
			median(eachD(rs, deployedRound.cores)))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nThe proxy processes' write / read system calls per GET (medians; /proc/<pid>/io): Keyport %s, bare %s.\n",
		sysPerGET(res.deployed[1]), sysPerGET(res.deployed[2]))
	fmt.Fprintf(w, "\nRough CPU ceiling of the deployed ratios, if the cores were the only limit: direct's CPU per GET over each\n"+
		"path's: Keyport %.2f, bare %.2f.\n", ratio(float64(totals[0]), float64(totals[1])), ratio(float64(totals[0]), float64(totals[2])))

	gap := median(deK) - median(deB)
	verdict := "met"
	if gap < -maxDeployedGap {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nTarget (missing it does not fail the run): the deployed Keyport ratio at most %.2f below the deployed bare\n"+
		"proxy's: %.3f − %.3f = %+.3f, %s\n", maxDeployedGap, median(deK), median(deB), gap, verdict)
	fmt.Fprintln(w, `
Notes: the in-process section is make bench's GET measurement with the same control plane in the same run
(client, Keyport and the bare proxy in the bench's process; "client" there is that process's CPU on the direct
path and "proxy" what the other paths add to it). The deployed section runs the built keyport (keyport start -c,
SQLite and the audit log on disk, as the quickstart does) with the bot's kubeconfig from the built tbot (its
exec credential plugin), the bare Go reverse proxy in a process of its own (TLS and HTTP/2 on both sides, the
same impersonation; the daemon's GC setting), and a client-go load process (Go's default GC, one HTTP/2
connection per path) that sends a fixed number of GETs per round. The direct path is the admin certificate
impersonating the bot's user and groups, as Keyport does. "cores busy" is the measured processes' CPU over the
round's wall time: near the core count, the run is CPU-bound and a path's rate follows its total CPU per GET.`)
}

func sysPerGET(rs []deployedRound) string {
	w := median(eachD(rs, func(r deployedRound) float64 { return perRequest(r.proxySys.writes, r.requests) }))
	rd := median(eachD(rs, func(r deployedRound) float64 { return perRequest(r.proxySys.reads, r.requests) }))
	return fmt.Sprintf("%.1f / %.1f", w, rd)
}

func eachD[T any](rs []deployedRound, f func(deployedRound) T) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}
