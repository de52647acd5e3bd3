package kubeenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// CheckAttach runs `kubectl attach pod` with kubeconfig and appends numbered lines to the
// pod log (with appendLog, normally Env.AppendPodLog) until one of them comes out of
// kubectl: kwok's attach streams only what is written after it starts, and nothing
// tells the caller when it has. env is added to kubectl's environment (for example
// KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false for SPDY). It fails after 60 seconds.
func CheckAttach(ctx context.Context, kubectl, kubeconfig, pod string, appendLog func(string) error, env ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "attach", pod)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	seen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "attached line ") {
				seen <- sc.Text()
				return
			}
		}
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		if err := appendLog(fmt.Sprintf("attached line %d", n)); err != nil {
			return err
		}
		select {
		case <-seen:
			return nil
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("kubectl attach %s printed none of %d appended lines: %w; stderr: %s", pod, n, ctx.Err(), stderr.String())
		}
	}
}
