// Package machine tells opens and clicks made by machines (mailbox privacy proxies that
// prefetch every image, security gateways that follow every link before the recipient sees
// the email) from those of people. It is pure: the caller passes the event and the context
// the rules need (the delivery time, the recent clicks of the same recipient on the same
// campaign) and gets a verdict with a reason. Nothing here does I/O or keeps state.
package machine

import (
	"strconv"
	"strings"
	"time"
)

// Type is the kind of engagement being classified.
type Type string

// Types of engagement.
const (
	TypeOpen  Type = "open"
	TypeClick Type = "click"
)

// Reason says why an event was judged to be a machine's. Stable: stored and used in metrics.
type Reason string

// Reasons.
const (
	// ReasonNone is the reason of a human verdict.
	ReasonNone Reason = ""
	// ReasonNoUserAgent is a request without a user agent: every mail client sends one.
	ReasonNoUserAgent Reason = "no_user_agent"
	// ReasonPrivacyProxy is a mailbox provider's image proxy or privacy prefetch (Google,
	// Yahoo/AOL, Apple Mail Privacy Protection): it loads the pixel whether or not the
	// recipient reads the email.
	ReasonPrivacyProxy Reason = "privacy_proxy"
	// ReasonLinkScanner is a security product that follows links to check them (Microsoft
	// Defender Safe Links, Proofpoint, Mimecast, Barracuda, Symantec, ...), or an HTTP
	// library or crawler.
	ReasonLinkScanner Reason = "link_scanner"
	// ReasonTooSoon is an open or click within Rules.MinDelay of delivery: faster than a
	// person opens an email.
	ReasonTooSoon Reason = "too_soon_after_delivery"
	// ReasonLinkBurst is many distinct links of one email clicked within a short window:
	// a scanner walking every link.
	ReasonLinkBurst Reason = "link_burst"
)

// Event is one open or click as received.
type Event struct {
	Type      Type
	UserAgent string
	// IP is the client address, kept for rules based on address ranges.
	IP string
	// URL is the clicked link, for clicks.
	URL string
	// At is when it happened.
	At time.Time
}

// Click is an earlier click of the same recipient on the same campaign.
type Click struct {
	URL string
	At  time.Time
}

// Context is what the timing rules need to know besides the event.
type Context struct {
	// DeliveredAt is when the email was delivered (or sent, when no delivery was reported);
	// the zero time skips the delivery rule.
	DeliveredAt time.Time
	// RecentClicks are the clicks of the same recipient on the same campaign within
	// Rules.BurstWindow before the event (more are ignored); the event itself not included.
	RecentClicks []Click
}

// Verdict is the answer for one event.
type Verdict struct {
	Machine bool
	Reason  Reason
	// Detail names what matched (the user agent pattern, the delay), for logs and support.
	Detail string
}

// Rules are the tunable thresholds of the timing rules.
type Rules struct {
	// MinDelay is the shortest delay after delivery at which an open or click can be a
	// person's.
	MinDelay time.Duration
	// BurstWindow and BurstLinks: BurstLinks distinct links (this one included) clicked
	// within BurstWindow are a scanner's.
	BurstWindow time.Duration
	BurstLinks  int
}

// DefaultRules are thresholds that catch the scanners seen in practice without catching
// people: scanners act within a second or two of delivery and walk every link at once.
func DefaultRules() Rules {
	return Rules{MinDelay: 2 * time.Second, BurstWindow: 5 * time.Second, BurstLinks: 3}
}

// Classify judges e with the user agent rules, then the timing rules of r with c.
func (r Rules) Classify(e Event, c Context) Verdict {
	if v := ClassifyUserAgent(e.UserAgent); v.Machine {
		return v
	}
	return r.ClassifyTiming(e, c)
}

// ClassifyTiming judges e with the timing rules of r and c alone, its user agent aside: for a
// caller that has judged the user agent already (Classify is ClassifyUserAgent, then this).
func (r Rules) ClassifyTiming(e Event, c Context) Verdict {
	if !c.DeliveredAt.IsZero() && r.MinDelay > 0 && !e.At.IsZero() {
		if d := e.At.Sub(c.DeliveredAt); d < r.MinDelay {
			return Verdict{Machine: true, Reason: ReasonTooSoon, Detail: "after " + d.Round(time.Millisecond).String()}
		}
	}
	if e.Type == TypeClick && r.BurstLinks > 1 && r.BurstWindow > 0 {
		links := map[string]struct{}{e.URL: {}}
		for _, cl := range c.RecentClicks {
			if d := e.At.Sub(cl.At); d >= 0 && d <= r.BurstWindow {
				links[cl.URL] = struct{}{}
			}
		}
		if len(links) >= r.BurstLinks {
			return Verdict{Machine: true, Reason: ReasonLinkBurst,
				Detail: strconv.Itoa(len(links)) + " links within " + r.BurstWindow.String()}
		}
	}
	return Verdict{}
}

// agent is a user agent pattern: a lower-case substring and what it means.
type agent struct {
	substr string
	reason Reason
	name   string
}

// agents are the user agents of known machines, matched case-insensitively as substrings.
// Order matters only for the name reported.
var agents = []agent{
	// Mailbox providers' image proxies: they fetch every image of an email, usually on
	// delivery, whether or not the recipient opens it.
	{"googleimageproxy", ReasonPrivacyProxy, "Gmail image proxy"},
	{"ggpht.com", ReasonPrivacyProxy, "Gmail image proxy"},
	{"yahoomailproxy", ReasonPrivacyProxy, "Yahoo/AOL mail proxy"},
	{"yahoo! slurp", ReasonPrivacyProxy, "Yahoo crawler"},
	{"aolmailproxy", ReasonPrivacyProxy, "AOL mail proxy"},
	{"outlook-ios-imageproxy", ReasonPrivacyProxy, "Outlook image proxy"},
	// Security gateways that follow links (and load images) to check them.
	{"safelinks", ReasonLinkScanner, "Microsoft Defender Safe Links"},
	{"microsoft office existence discovery", ReasonLinkScanner, "Microsoft Office link check"},
	{"ms-office", ReasonLinkScanner, "Microsoft Office link check"},
	{"bingpreview", ReasonLinkScanner, "Bing preview"},
	{"proofpoint", ReasonLinkScanner, "Proofpoint"},
	{"urldefense", ReasonLinkScanner, "Proofpoint URL Defense"},
	{"mimecast", ReasonLinkScanner, "Mimecast"},
	{"barracuda", ReasonLinkScanner, "Barracuda"},
	{"symantec", ReasonLinkScanner, "Symantec"},
	{"messagelabs", ReasonLinkScanner, "Symantec MessageLabs"},
	{"trendmicro", ReasonLinkScanner, "Trend Micro"},
	{"forcepoint", ReasonLinkScanner, "Forcepoint"},
	{"ironport", ReasonLinkScanner, "Cisco IronPort"},
	{"fortiguard", ReasonLinkScanner, "Fortinet"},
	{"sophos", ReasonLinkScanner, "Sophos"},
	// Crawlers, headless browsers and HTTP libraries: no person reads email with them.
	{"googlebot", ReasonLinkScanner, "crawler"},
	{"bingbot", ReasonLinkScanner, "crawler"},
	{"headlesschrome", ReasonLinkScanner, "headless browser"},
	{"phantomjs", ReasonLinkScanner, "headless browser"},
	{"python-requests", ReasonLinkScanner, "HTTP library"},
	{"python-urllib", ReasonLinkScanner, "HTTP library"},
	{"go-http-client", ReasonLinkScanner, "HTTP library"},
	{"curl/", ReasonLinkScanner, "HTTP library"},
	{"wget/", ReasonLinkScanner, "HTTP library"},
	{"okhttp", ReasonLinkScanner, "HTTP library"},
	{"java/", ReasonLinkScanner, "HTTP library"},
	{"libwww-perl", ReasonLinkScanner, "HTTP library"},
}

// appleMPP is the whole user agent of Apple Mail Privacy Protection's prefetch: bare
// "Mozilla/5.0", which no browser or mail client sends on its own.
const appleMPP = "mozilla/5.0"

// ClassifyUserAgent judges a request by its user agent alone.
func ClassifyUserAgent(ua string) Verdict {
	ua = strings.ToLower(strings.TrimSpace(ua))
	if ua == "" {
		return Verdict{Machine: true, Reason: ReasonNoUserAgent, Detail: "no user agent"}
	}
	if ua == appleMPP {
		return Verdict{Machine: true, Reason: ReasonPrivacyProxy, Detail: "Apple Mail Privacy Protection"}
	}
	for _, a := range agents {
		if strings.Contains(ua, a.substr) {
			return Verdict{Machine: true, Reason: a.reason, Detail: a.name}
		}
	}
	return Verdict{}
}
