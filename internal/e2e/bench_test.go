package e2e

import (
	"context"
	"testing"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/testenv"
)

// BenchmarkBotRenewal measures certificates issued per second through the Auth API on
// loopback, SQLite storage: parallel bots, each renewing its own identity in a loop (each
// renewal is a new mTLS connection with the previous certificate, a generation
// compare-and-swap, a signature and an audit event).
func BenchmarkBotRenewal(b *testing.B) {
	ctx := context.Background()
	env := testenv.New(b)
	admin := env.AdminClient()
	if _, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "bench", Roles: []string{"access"}}); err != nil {
		b.Fatal(err)
	}
	// Many bots renew at once in a real cluster; 8 per core keeps the pipeline full.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		resp, err := admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "bench"})
		if err != nil {
			b.Error(err)
			return
		}
		bot := newBotClient(b, env)
		if err := bot.join(ctx, env.AuthAddr, resp.GetToken()); err != nil {
			b.Error(err)
			return
		}
		for p.Next() {
			if err := bot.renew(ctx, env.AuthAddr); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkBotOutputCerts measures certificates issued per second on one kept-open mTLS
// connection: a bot's requests for output certificates, the issuance path itself without
// a TLS handshake per certificate.
func BenchmarkBotOutputCerts(b *testing.B) {
	ctx := context.Background()
	env := testenv.New(b)
	admin := env.AdminClient()
	if _, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "bench", Roles: []string{"access"}}); err != nil {
		b.Fatal(err)
	}
	resp, err := admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	bot := newBotClient(b, env)
	if err := bot.join(ctx, env.AuthAddr, resp.GetToken()); err != nil {
		b.Fatal(err)
	}
	clt := env.Client(env.AuthAddr, bot.id)
	der := bot.pubDER()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if _, err := clt.GenerateBotCerts(ctx, &pb.GenerateBotCertsRequest{PublicKeyDer: der, TtlSeconds: 600}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
