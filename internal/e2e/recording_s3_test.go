package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/minioenv"
	"github.com/keyport/keyport/internal/types"
)

// TestSessionRecordingS3: recordings go to a real S3-compatible server (MinIO), are
// listed and played from it; when the server stops mid-session, a strict session ends
// with a message on the user's terminal and a best_effort one goes on with the gap
// marked, and both recordings are stored once the server is back.
func TestSessionRecordingS3(t *testing.T) {
	m := minioenv.Start(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	k := startGuideControlPlane(t)
	env := testenv.New(t, testenv.WithKube(k.KubeconfigPath, map[string]string{"env": "dev"}), testenv.WithRecordingURI(m.URI("keyport")))
	s := &kubeSetup{kube: k, env: env, admin: env.AdminClient()}
	waitUntil(t, 10*time.Second, func() bool {
		resp, err := s.admin.ListKubeClusters(context.Background(), &pb.ListKubeClustersRequest{})
		return err == nil && len(resp.GetClusters()) == 1
	})
	createResource(t, s.admin, guideExampleRole())
	createResource(t, s.admin, types.NewRole("strict-rec", types.V7, types.RoleSpec{
		Options: types.RoleOptions{RecordSession: types.RecordSession{Kubernetes: types.RecordStrict}}}))
	kc := s.kubeconfigFor(t, "alice", "example-role")
	strict := s.kubeconfigFor(t, "stella", "example-role", "strict-rec")
	u := auditorTsh(t, s, "audra")

	t.Run("stored in the bucket, listed and played from it", func(t *testing.T) {
		if out, err := kubectl(t, strict, "exec", "web-0", "--", "echo", "to-s3"); err != nil || !strings.Contains(out, "to-s3") {
			t.Fatalf("kubectl exec: %v\n%s", err, out)
		}
		info := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "stella"}, 1)[0]
		key := "keyport/" + info.SessionID + ".cast"
		if info.URL != "s3://"+m.Bucket+"/"+key {
			t.Errorf("URL = %q", info.URL)
		}
		if _, err := m.Client(t).StatObject(context.Background(), m.Bucket, key, minio.StatObjectOptions{}); err != nil {
			t.Errorf("the object is not in MinIO: %v", err)
		}
		if out := u.must("", "tsh", "play", "--format=text", info.SessionID); !strings.Contains(out, "to-s3") {
			t.Errorf("tsh play from S3:\n%s", out)
		}
		if out := u.must("", "tsh", "recordings", "ls"); !strings.Contains(out, info.SessionID) {
			t.Errorf("tsh recordings ls:\n%s", out)
		}
	})

	t.Run("the store stops mid-session", func(t *testing.T) {
		// One session at a time: kwok runs every exec's shell in its own process, and a
		// shell cut off from its stream can take another pod's concurrent shell with it.
		// kwok's exec stream also sometimes ends by itself, with a clean close, about a
		// second into a session (seen in about 1 of 9 runs, with an idle sh and with a
		// loop that reads nothing alike, before this change too): the server's side then
		// ends before Keyport has anything to end, and kubectl exits 0. Such a run says
		// nothing about Keyport, so the scenario is tried once more, and only then judged.
		const ended = "keyport ended this session: its recording could not be written (strict recording mode): the session recording store is unavailable"
		for attempt := 1; ; attempt++ {
			strictSess := startPTY(t, strict, nil, "exec", "-it", "web-0", "--", "sh", "-c", "echo session-up; while :; do sleep 1; done")
			strictSess.waitFor("session-up")
			m.Stop()
			code := strictSess.exitCode()
			if code != 0 && strings.Contains(strictSess.output(), ended) {
				break
			}
			if attempt == 1 && code == 0 && !strings.Contains(strictSess.output(), "keyport") {
				t.Logf("kwok ended the exec stream by itself (exit 0, no notice); trying the scenario again:\n%s", strictSess.output())
				m.Restart(t)
				continue
			}
			t.Errorf("strict session: exit %d, terminal:\n%s", code, strictSess.output())
			break
		}
		if out, err := kubectl(t, strict, "exec", "web-0", "--", "echo", "must-not-run"); err == nil || !strings.Contains(out, "the recording store is unavailable") {
			t.Errorf("a strict session started while the store is down: %v\n%s", err, out)
		}
		bestSess := startPTY(t, kc, nil, "exec", "-it", "web-0", "--", "sh")
		bestSess.waitForAny("# ", "$ ")
		// The best_effort session goes on; its recording marks the gap.
		pending := filepath.Join(env.Config.Keyport.DataDir, "records", "pending")
		waitUntil(t, 30*time.Second, func() bool {
			entries, _ := os.ReadDir(pending)
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(pending, e.Name()))
				if strings.Contains(string(b), "alice") && strings.Contains(string(b), "gap: the session recording store is unavailable") {
					return true
				}
			}
			return false
		})
		bestSess.typeLine("echo still-$((20+22))")
		bestSess.waitFor("still-42")
		bestSess.typeLine("exit")
		if code := bestSess.exitCode(); code != 0 {
			t.Errorf("best_effort session: exit %d:\n%s", code, bestSess.output())
		}
		// Both stay on the proxy's disk until the store is back, then are stored.
		m.Restart(t)
		strictInfo := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "stella"}, 2)[0]
		bestInfo := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice"}, 1)[0]
		for _, c := range []struct {
			info recording.Info
			want []string
		}{
			{strictInfo, []string{"gap: the session recording store is unavailable", "ended by keyport: keyport ended this session"}},
			{bestInfo, []string{"gap: the session recording store is unavailable", "still-42"}},
		} {
			if !strings.HasPrefix(c.info.URL, "s3://") {
				t.Errorf("%s's recording was not stored in S3: %+v", c.info.User, c.info)
			}
			out := u.must("", "tsh", "play", "--format=json", c.info.SessionID)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s's recording lacks %q:\n%s", c.info.User, w, out)
				}
			}
		}
	})
}
