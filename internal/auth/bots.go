package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

const (
	botInstancePrefix = "/bot_instances/"
	usedTokenPrefix   = "/used_tokens/"
)

// BotInstance is one joined copy of a bot, with its renewal counter.
type BotInstance struct {
	BotName    string `json:"bot_name"`
	ID         string `json:"id"`
	JoinMethod string `json:"join_method"`
	// JoinToken is the token resource a secretless join used; JoinClaims what the join
	// proved (an ID token's verified claims, a service account, a bound key).
	JoinToken  string         `json:"join_token,omitempty"`
	JoinClaims map[string]any `json:"join_claims,omitempty"`
	Hostname   string         `json:"hostname"`
	Joined     time.Time      `json:"joined"`
	LastSeen   time.Time      `json:"last_seen"`
	Generation uint64         `json:"generation"`
	Locked     bool           `json:"locked,omitempty"`
	Revision   int64          `json:"-"`
}

func botInstanceKey(bot, id string) []byte { return []byte(botInstancePrefix + bot + "/" + id) }

// CreateBotBoundKeypair makes a bot that joins with method bound_keypair: its token
// resource and the one-time registration secret (valid for ttl) that binds tbot's key.
func (s *Server) CreateBotBoundKeypair(ctx context.Context, actor Actor, bot *types.Bot, rejoins int, ttl time.Duration) (tok *types.Token, secret string, err error) {
	if err := bot.CheckAndSetDefaults(); err != nil {
		return nil, "", err
	}
	tok, secret, err = s.NewBoundKeypairToken(bot.GetName(), rejoins, ttl)
	if err != nil {
		return nil, "", err
	}
	if err := s.createBotResources(ctx, actor, bot); err != nil {
		return nil, "", err
	}
	if _, err := s.putToken(ctx, actor, tok, CreateOnly); err != nil {
		return nil, "", err
	}
	return tok, secret, nil
}

// CreateBot makes a bot (with its user and role bot-NAME) and a join token for it.
func (s *Server) CreateBot(ctx context.Context, actor Actor, bot *types.Bot, tokenTTL time.Duration) (token string, exp time.Time, err error) {
	if err := bot.CheckAndSetDefaults(); err != nil {
		return "", time.Time{}, err
	}
	if err := s.createBotResources(ctx, actor, bot); err != nil {
		return "", time.Time{}, err
	}
	secret, t, err := s.CreateToken(ctx, actor, types.TokenRoleBot, bot.GetName(), types.JoinMethodToken, "", nil, tokenTTL)
	if err != nil {
		return "", time.Time{}, err
	}
	return secret, *t.Metadata.Expires, nil
}

func (s *Server) createBotResources(ctx context.Context, actor Actor, bot *types.Bot) error {
	if err := s.checkRolesExist(ctx, bot.Spec.Roles); err != nil {
		return err
	}
	userName, roleName := types.BotResourceNames(bot.GetName())
	role := types.NewRole(roleName, types.V7, types.RoleSpec{})
	role.Metadata.Description = "Backs bot " + bot.GetName() + "; managed by Keyport."
	role.Metadata.Labels = map[string]string{"keyport.dev/bot": bot.GetName()}
	user := types.NewUser(userName, roleName)
	user.Metadata.Labels = map[string]string{"keyport.dev/bot": bot.GetName()}
	for _, r := range []types.Resource{role, user} {
		if err := r.CheckAndSetDefaults(); err != nil {
			return err
		}
		if _, err := s.GetResource(ctx, r.GetKind(), r.GetName()); err == nil {
			return errs.AlreadyExistsf("%s '%s' already exists", r.GetKind(), r.GetName())
		}
	}
	it, err := itemFor(bot)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Backend.Create(ctx, it); err != nil {
		if errs.IsAlreadyExists(err) {
			return errs.AlreadyExistsf("bot '%s' already exists", bot.GetName())
		}
		return err
	}
	for _, r := range []types.Resource{role, user} {
		it, err := itemFor(r)
		if err != nil {
			return err
		}
		if _, err := s.cfg.Backend.Put(ctx, it); err != nil {
			return fmt.Errorf("creating %s %q: %w", r.GetKind(), r.GetName(), err)
		}
	}
	s.emit(ctx, actor, audit.Event{Type: audit.BotCreate, Success: true, Fields: map[string]any{"bot": bot.GetName(), "roles": bot.Spec.Roles}})
	return nil
}

// UpdateBot changes a bot's roles; they apply at the bot's next renewal.
func (s *Server) UpdateBot(ctx context.Context, actor Actor, name string, addRoles, setRoles []string, set bool) (*types.Bot, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.GetResource(ctx, types.KindBot, name)
		if err != nil {
			return nil, err
		}
		bot := r.(*types.Bot)
		roles := slices.Clone(bot.Spec.Roles)
		if set {
			roles = slices.Clone(setRoles)
		}
		for _, a := range addRoles {
			if !slices.Contains(roles, a) {
				roles = append(roles, a)
			}
		}
		if err := s.checkRolesExist(ctx, roles); err != nil {
			return nil, err
		}
		bot.Spec.Roles = roles
		if err := bot.CheckAndSetDefaults(); err != nil {
			return nil, err
		}
		it, err := itemFor(bot)
		if err != nil {
			return nil, err
		}
		rev, err := s.cfg.Backend.CompareAndSwap(ctx, it, bot.Metadata.Revision)
		if errs.IsCompareFailed(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		bot.Metadata.Revision = rev
		s.emit(ctx, actor, audit.Event{Type: audit.BotUpdate, Success: true, Fields: map[string]any{"bot": name, "roles": roles}})
		return bot, nil
	}
}

// BotInstances lists the instances of bot (all bots when empty).
func (s *Server) BotInstances(ctx context.Context, bot string) ([]BotInstance, error) {
	prefix := botInstancePrefix
	if bot != "" {
		prefix += bot + "/"
	}
	items, err := s.cfg.Backend.GetRange(ctx, []byte(prefix), 0)
	if err != nil {
		return nil, err
	}
	out := make([]BotInstance, 0, len(items))
	for _, it := range items {
		var bi BotInstance
		if err := json.Unmarshal(it.Value, &bi); err != nil {
			return nil, fmt.Errorf("decoding bot instance: %w", err)
		}
		bi.Revision = it.Revision
		out = append(out, bi)
	}
	return out, nil
}

// CertsResult is what a join or renewal returns.
type CertsResult struct {
	CertPEM    []byte
	InstanceID string
	Generation uint64
}

// JoinBot exchanges a join token for the bot's first renewable identity. With method
// token (the default), secret is the single-use token; with method kubernetes, it is
// "<token name>\n<service account JWT>" (see checkKubernetesJoin).
func (s *Server) JoinBot(ctx context.Context, addr, method, secret, hostname string, pub crypto.PublicKey, ttl time.Duration) (*CertsResult, error) {
	return s.joinBot(ctx, addr, method, secret, hostname, pub, ttl, nil)
}

// JoinBotBoundKeypair joins with method bound_keypair: tokenName names the token
// resource, and proof is the bound key's answer to a challenge (see boundkeypair.go).
func (s *Server) JoinBotBoundKeypair(ctx context.Context, addr, tokenName, hostname string, pub crypto.PublicKey, ttl time.Duration, proof BoundKeypairProof) (*CertsResult, error) {
	return s.joinBot(ctx, addr, types.JoinMethodBoundKeypair, tokenName, hostname, pub, ttl, &proof)
}

func (s *Server) joinBot(ctx context.Context, addr, method, secret, hostname string, pub crypto.PublicKey, ttl time.Duration, proof *BoundKeypairProof) (*CertsResult, error) {
	actor := Actor{Addr: addr}
	if !s.joinLimiter.Allow(sourceHost(addr)) {
		s.emit(ctx, actor, audit.Event{Type: audit.BotJoinFailure, Message: "rate limited"})
		return nil, errs.LimitExceededf("too many join attempts from %s; wait a minute", sourceHost(addr))
	}
	var (
		tok    *types.Token
		fields = map[string]any{"hostname": hostname}
		claims map[string]any
		detail map[string]any
	)
	fail := func(err error) (*CertsResult, error) {
		f := map[string]any{"join_method": method}
		for k, v := range detail {
			f[k] = v
		}
		s.emit(ctx, actor, audit.Event{Type: audit.BotJoinFailure, Message: err.Error(), Fields: f})
		return nil, err
	}
	switch method {
	case "", types.JoinMethodToken:
		method = types.JoinMethodToken
		t, err := s.consumeBotToken(ctx, secret)
		if err != nil {
			return fail(err)
		}
		tok = t
	case types.JoinMethodKubernetes:
		kj, err := s.checkKubernetesJoin(ctx, secret)
		if err != nil {
			return fail(err)
		}
		tok = kj.token
		fields["token"] = tok.GetName()
		fields["service_account"] = kj.serviceAccount
		fields["pod"] = kj.pod
		fields["kube_cluster"] = kj.cluster
		claims = map[string]any{"service_account": kj.serviceAccount, "pod": kj.pod, "kube_cluster": kj.cluster}
	case types.JoinMethodGitHub, types.JoinMethodGitLab, types.JoinMethodOIDC:
		cj, d, err := s.checkCIJoin(ctx, method, secret)
		detail = d
		if err != nil {
			return fail(err)
		}
		tok, claims = cj.token, cj.claims
		fields["token"] = tok.GetName()
		fields["claims"] = claims
		fields["rule"] = cj.rule
	case types.JoinMethodBoundKeypair:
		if proof == nil {
			return fail(errs.BadParameterf("join method bound_keypair answers a challenge: use tbot (onboarding.join_method: bound_keypair)"))
		}
		t, c, err := s.checkBoundKeypairJoin(ctx, strings.TrimSpace(secret), *proof)
		if err != nil {
			return fail(err)
		}
		tok, claims = t, c
		fields["token"] = tok.GetName()
		fields["claims"] = claims
	default:
		return fail(errs.BadParameterf("unknown join method %q (want token, kubernetes, github, gitlab, oidc or bound_keypair)", method))
	}
	fields["join_method"] = method
	botR, err := s.GetResource(ctx, types.KindBot, tok.Spec.BotName)
	if err != nil {
		return fail(errs.AccessDeniedf("bot %q of this token no longer exists", tok.Spec.BotName))
	}
	bot := botR.(*types.Bot)
	userName, _ := types.BotResourceNames(bot.GetName())
	if err := s.CheckLock(&tlsca.Identity{Username: userName, BotName: bot.GetName(), Roles: bot.Spec.Roles}); err != nil {
		return fail(err)
	}
	id, err := randomHex(s.cfg.Rand, 16)
	if err != nil {
		return nil, err
	}
	id = fmt.Sprintf("%s-%s-%s-%s-%s", id[0:8], id[8:12], id[12:16], id[16:20], id[20:32])
	now := s.cfg.Clock.Now().UTC()
	bi := BotInstance{BotName: bot.GetName(), ID: id, JoinMethod: method, Hostname: hostname, Joined: now, LastSeen: now, Generation: 1, JoinClaims: claims}
	if method != types.JoinMethodToken {
		bi.JoinToken = tok.GetName()
	}
	data, _ := json.Marshal(bi)
	if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: botInstanceKey(bi.BotName, id), Value: data}); err != nil {
		return nil, err
	}
	cert, err := s.issueBotCert(bot, &bi, pub, ttl, true, "")
	if err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.BotJoin, Success: true, User: userName, BotName: bot.GetName(), BotInstanceID: id, Fields: fields})
	return &CertsResult{CertPEM: cert, InstanceID: id, Generation: 1}, nil
}

// consumeBotToken checks a single-use bot join token and spends it.
func (s *Server) consumeBotToken(ctx context.Context, secret string) (*types.Token, error) {
	tok, err := s.useJoinToken(ctx, secret, types.TokenRoleBot, "`tctl bots add` or `tctl tokens add --type=bot`")
	if err != nil {
		return nil, err
	}
	if tok.Spec.BotName == "" {
		return nil, errs.AccessDeniedf("the join token is not a bot token")
	}
	return tok, nil
}

// RenewBot issues the next renewable identity. The caller's generation must be the
// instance's current one: an older one means the identity was copied, and the instance is
// locked.
func (s *Server) RenewBot(ctx context.Context, actor Actor, pub crypto.PublicKey, ttl time.Duration) (*CertsResult, error) {
	id := actor.Identity
	if id == nil || !id.Renewable || id.BotName == "" {
		return nil, errs.AccessDeniedf("only a bot's renewable identity may renew")
	}
	it, err := s.cfg.Backend.Get(ctx, botInstanceKey(id.BotName, id.BotInstanceID))
	if err != nil {
		if errs.IsNotFound(err) {
			return nil, errs.AccessDeniedf("bot instance %s no longer exists; join again", id.BotInstanceID)
		}
		return nil, err
	}
	var bi BotInstance
	if err := json.Unmarshal(it.Value, &bi); err != nil {
		return nil, err
	}
	if bi.Locked {
		return nil, errs.AccessDeniedf("bot instance %s is locked", bi.ID)
	}
	if id.Generation != bi.Generation {
		return nil, s.lockInstance(ctx, actor, &bi, it.Revision, fmt.Sprintf("renewal with generation %d, but the current generation is %d: the identity was copied", id.Generation, bi.Generation))
	}
	botR, err := s.GetResource(ctx, types.KindBot, id.BotName)
	if err != nil {
		return nil, errs.AccessDeniedf("bot %q no longer exists", id.BotName)
	}
	bi.Generation++
	bi.LastSeen = s.cfg.Clock.Now().UTC()
	data, _ := json.Marshal(bi)
	if _, err := s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: it.Key, Value: data}, it.Revision); err != nil {
		if errs.IsCompareFailed(err) {
			// Someone renewed this generation at the same moment: two holders.
			bi.Generation--
			return nil, s.lockInstance(ctx, actor, &bi, 0, fmt.Sprintf("two renewals of generation %d at once: the identity was copied", id.Generation))
		}
		return nil, err
	}
	cert, err := s.issueBotCert(botR.(*types.Bot), &bi, pub, ttl, true, "")
	if err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.BotRenew, Success: true, Fields: map[string]any{"generation": bi.Generation}})
	return &CertsResult{CertPEM: cert, InstanceID: bi.ID, Generation: bi.Generation}, nil
}

// lockInstance marks the instance locked, creates a lock on it and records why.
func (s *Server) lockInstance(ctx context.Context, actor Actor, bi *BotInstance, rev int64, why string) error {
	for attempt := 0; attempt < 5; attempt++ {
		it, err := s.cfg.Backend.Get(ctx, botInstanceKey(bi.BotName, bi.ID))
		if err != nil {
			break
		}
		var cur BotInstance
		if err := json.Unmarshal(it.Value, &cur); err != nil {
			break
		}
		cur.Locked = true
		data, _ := json.Marshal(cur)
		if _, err := s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: it.Key, Value: data}, it.Revision); err == nil {
			break
		}
	}
	_ = rev
	lock := types.NewLock("bot-instance-"+bi.ID, types.LockTarget{BotInstanceID: bi.ID}, "bot instance locked: "+why)
	now := s.cfg.Clock.Now().UTC()
	lock.Spec.CreatedAt = &now
	lock.Spec.CreatedBy = "keyport"
	if err := lock.CheckAndSetDefaults(); err == nil {
		if it, err := itemFor(lock); err == nil {
			_, _ = s.cfg.Backend.Put(ctx, it)
		}
	}
	s.emit(ctx, actor, audit.Event{Type: audit.BotInstanceLocked, Success: false, Message: why,
		BotName: bi.BotName, BotInstanceID: bi.ID, Fields: map[string]any{"generation": bi.Generation}})
	s.emit(ctx, actor, audit.Event{Type: audit.LockCreate, Success: true, Message: lock.Spec.Message, Fields: map[string]any{"target": lock.Spec.Target.String()}})
	return errs.AccessDeniedf("bot instance %s has been locked: %s", bi.ID, why)
}

// GenerateBotCerts issues a non-renewable certificate for a bot's outputs, with the roles
// the bot has now, routed to kubeCluster when set.
func (s *Server) GenerateBotCerts(ctx context.Context, actor Actor, pub crypto.PublicKey, ttl time.Duration, kubeCluster string) ([]byte, error) {
	id := actor.Identity
	if id == nil || !id.Renewable || id.BotName == "" {
		return nil, errs.AccessDeniedf("only a bot's renewable identity may request output certificates")
	}
	it, err := s.cfg.Backend.Get(ctx, botInstanceKey(id.BotName, id.BotInstanceID))
	if err != nil {
		return nil, errs.AccessDeniedf("bot instance %s no longer exists; join again", id.BotInstanceID)
	}
	var bi BotInstance
	if err := json.Unmarshal(it.Value, &bi); err != nil {
		return nil, err
	}
	if bi.Locked {
		return nil, errs.AccessDeniedf("bot instance %s is locked", bi.ID)
	}
	if id.Generation != bi.Generation {
		return nil, errs.AccessDeniedf("this identity is generation %d but the bot instance is at %d", id.Generation, bi.Generation)
	}
	botR, err := s.GetResource(ctx, types.KindBot, id.BotName)
	if err != nil {
		return nil, errs.AccessDeniedf("bot %q no longer exists", id.BotName)
	}
	if kubeCluster != "" {
		if _, err := s.cache.Get(types.KindKubeCluster, kubeCluster); err != nil {
			return nil, errs.NotFoundf("kube cluster %q is not registered with this cluster (see `tctl kube ls`)", kubeCluster)
		}
	}
	if ttl <= 0 || time.Until(id.Expires) < ttl {
		ttl = id.Expires.Sub(s.cfg.Clock.Now())
	}
	cert, err := s.issueBotCert(botR.(*types.Bot), &bi, pub, ttl, false, kubeCluster)
	if err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.CertIssue, Success: true, Fields: map[string]any{"kube_cluster": kubeCluster, "ttl": ttl.String()}})
	return cert, nil
}

func (s *Server) issueBotCert(bot *types.Bot, bi *BotInstance, pub crypto.PublicKey, ttl time.Duration, renewable bool, kubeCluster string) ([]byte, error) {
	if ttl <= 0 {
		ttl = DefaultBotTTL
	}
	ttl = min(ttl, MaxBotTTL)
	if m := time.Duration(bot.Spec.MaxSessionTTL); m > 0 {
		ttl = min(ttl, m)
	}
	userName, roleName := types.BotResourceNames(bot.GetName())
	roles := append([]string{roleName}, bot.Spec.Roles...)
	now := s.cfg.Clock.Now()
	return s.UserCA().Issue(s.cfg.Rand, now, tlsca.CertRequest{
		PublicKey: pub,
		Identity: tlsca.Identity{Username: userName, Roles: roles, Traits: bot.Spec.Traits, BotName: bot.GetName(),
			BotInstanceID: bi.ID, Renewable: renewable, Generation: bi.Generation, KubeCluster: kubeCluster},
		NotAfter: now.Add(ttl),
	})
}

// ParsePublicKey reads a PKIX DER public key sent by a client.
func ParsePublicKey(der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 {
		return nil, errs.BadParameterf("no public key given")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errs.BadParameterf("public key: %w", err)
	}
	return pub, nil
}
