package tlsca

import (
	"crypto/rand"
	"io"
	"math/big"
)

// cryptoRandInt draws a uniform integer in [0, max) from r.
func cryptoRandInt(r io.Reader, max *big.Int) (*big.Int, error) { return rand.Int(r, max) }
