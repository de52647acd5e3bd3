package backendtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/keyport/keyport/internal/backend"
)

// benchValue is about the size of a typical stored resource (a role or a user).
var benchValue = make([]byte, 512)

// benchKeys is the working set: small enough to stay cached, large enough that writes
// touch different keys.
const benchKeys = 1000

// benchParallelism multiplies GOMAXPROCS into the number of goroutines of the parallel
// variants; storage calls mostly wait on I/O, so far more callers than cores are busy.
const benchParallelism = 8

// The benchmarks run each operation once from one goroutine (latency) and once from
// many (throughput), and report ops/s next to ns/op. Parallel workers report failures
// with b.Error: b.Fatal may only be called from the benchmark's own goroutine.

// BenchmarkPut measures overwrites of existing keys.
func BenchmarkPut(b *testing.B, be backend.Backend) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := putBench(ctx, be, fmt.Sprintf("bench/put/%d", i%benchKeys)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportOps(b)
	})
	b.Run("parallel", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := putBench(ctx, be, fmt.Sprintf("bench/put/%d", n.Add(1)%benchKeys)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOps(b)
	})
}

// BenchmarkGet measures reads of existing keys.
func BenchmarkGet(b *testing.B, be backend.Backend) {
	ctx := context.Background()
	for i := range benchKeys {
		if _, err := putBench(ctx, be, fmt.Sprintf("bench/get/%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	get := func(r *rand.Rand) error {
		_, err := be.Get(ctx, []byte(fmt.Sprintf("bench/get/%d", r.IntN(benchKeys))))
		return err
	}
	b.Run("serial", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			if err := get(r); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(benchParallelism)
		var seed atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 2))
			for pb.Next() {
				if err := get(r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOps(b)
	})
}

// BenchmarkCompareAndSwap measures uncontended swaps: each goroutine owns its key and
// swaps from the revision its last swap returned, so no attempt fails and the number is
// the cost of the conditional write itself, not of retries.
func BenchmarkCompareAndSwap(b *testing.B, be backend.Backend) {
	ctx := context.Background()
	var id atomic.Int64
	swapper := func() (func() error, error) {
		key := []byte(fmt.Sprintf("bench/cas/%d", id.Add(1)))
		rev, err := putBench(ctx, be, string(key))
		if err != nil {
			return nil, err
		}
		return func() error {
			rev, err = be.CompareAndSwap(ctx, backend.Item{Key: key, Value: benchValue}, rev)
			return err
		}, nil
	}
	b.Run("serial", func(b *testing.B) {
		swap, err := swapper()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := swap(); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			swap, err := swapper()
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if err := swap(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOps(b)
	})
}

func putBench(ctx context.Context, be backend.Backend, key string) (int64, error) {
	return be.Put(ctx, backend.Item{Key: []byte(key), Value: benchValue})
}

func reportOps(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
