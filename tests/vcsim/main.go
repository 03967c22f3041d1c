// vcsim-harness: govmomi's vCenter simulator (VPX model) for the vsphere-volume tests.
//
// It serves the vSphere API over HTTPS with a certificate it generates, accepts only
// the -user/-password login, has -datastores local datastores (folders below -dir),
// can delay chosen methods, and names one VM as "the Docker host's VM". When ready it
// prints ONE JSON line on stdout:
//
//	{"url": ..., "thumbprint": "AA:BB:...", "thumbprint_sha256": ..., "ca_file": ...,
//	 "datacenter": "DC0", "datastores": {"LocalDS_0": "/dir/..."},
//	 "host_vm": {"name": ..., "uuid": ...}, "vms": [...], "pid": N}
//
// and then serves until SIGTERM or SIGINT, when it closes the server, removes the
// datastore folders and exits 0.
//
// It counts the calls it serves per client address: every SOAP method by name and the
// datastore file requests as http.GET, http.PUT... GET /vcsim/calls answers them as
// {"ADDRESS": {"METHOD": N}} (tests and benchmarks tell one Docker host's calls from
// another's by its address).
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build (see scripts/build-vcsim).
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type hostVM struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

type ready struct {
	URL              string            `json:"url"`
	Thumbprint       string            `json:"thumbprint"`
	ThumbprintSHA256 string            `json:"thumbprint_sha256"`
	CAFile           string            `json:"ca_file"`
	Datacenter       string            `json:"datacenter"`
	Datastores       map[string]string `json:"datastores"`
	HostVM           hostVM            `json:"host_vm"`
	VMs              []string          `json:"vms"`
	User             string            `json:"user"`
	PID              int               `json:"pid"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address host:port (port 0: a free port)")
	user := flag.String("user", "vcsim-user", "the only user name accepted by Login")
	password := flag.String("password", "vcsim-password", "the only password accepted by Login")
	certFile := flag.String("cert-file", "", "write the server certificate (PEM, usable as a CA file) here; default: <dir>/vcsim-ca.pem")
	hosts := flag.String("hosts", "127.0.0.1,::1,localhost", "comma-separated names and IPs the certificate is valid for")
	datastores := flag.Int("datastores", 2, "number of local datastores (at least 2)")
	dir := flag.String("dir", "", "folder below which the datastore folders are made (default: the system temp folder)")
	delayAll := flag.Int("delay-all", 0, "milliseconds every SOAP call is delayed")
	delays := flag.String("delay", "", "per-method delays in milliseconds: Method=ms,Method=ms (e.g. CreateVirtualDisk_Task=1000)")
	vmName := flag.String("vm", "DC0_H0_VM0", "the VM that plays the Docker host's VM")
	enableUUID := flag.Bool("enable-uuid", true, "set disk.EnableUUID=TRUE in the host VM's extraConfig")
	flag.Parse()

	if *datastores < 2 {
		log.Fatalf("-datastores must be at least 2, not %d", *datastores)
	}
	methodDelay, err := parseDelays(*delays)
	if err != nil {
		log.Fatal(err)
	}
	if *dir != "" {
		// The model makes each datastore with ioutil.TempDir("", ...): TMPDIR decides where.
		if err := os.MkdirAll(*dir, 0755); err != nil {
			log.Fatal(err)
		}
		os.Setenv("TMPDIR", *dir)
	}
	if *certFile == "" {
		base := *dir
		if base == "" {
			base = os.TempDir()
		}
		*certFile = filepath.Join(base, "vcsim-ca.pem")
	}

	cert, der, err := makeCertificate(strings.Split(*hosts, ","))
	if err != nil {
		log.Fatal(err)
	}
	if err := writePEM(*certFile, der); err != nil {
		log.Fatal(err)
	}

	model := simulator.VPX()
	model.Datastore = *datastores
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()

	vm, err := findVM(*vmName)
	if err != nil {
		log.Fatal(err)
	}
	if *enableUUID {
		vm.Config.ExtraConfig = append(vm.Config.ExtraConfig,
			&types.OptionValue{Key: "disk.EnableUUID", Value: "TRUE"})
	}

	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *password)}
	model.DelayConfig = simulator.DelayConfig{Delay: *delayAll, MethodDelay: methodDelay}
	server := model.Service.NewServer()
	// Before any client connects: the server reads its handler for each request.
	server.Config.Handler = &callCounter{next: server.Config.Handler, calls: map[string]map[string]int{}}

	info := ready{
		URL:              (&url.URL{Scheme: "https", Host: server.URL.Host, Path: server.URL.Path}).String(),
		Thumbprint:       fingerprint(sha1.Sum(der)),
		ThumbprintSHA256: fingerprint(sha256.Sum256(der)),
		CAFile:           *certFile,
		Datacenter:       "DC0",
		Datastores:       datastoreFolders(),
		HostVM:           hostVM{Name: vm.Name, UUID: vm.Config.Uuid},
		VMs:              vmNames(),
		User:             *user,
		PID:              os.Getpid(),
	}
	line, err := json.Marshal(info)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(line))
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	server.Close()
}

// parseDelays parses "Method=ms,Method=ms".
func parseDelays(text string) (map[string]int, error) {
	delays := map[string]int{}
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kv := strings.SplitN(part, "=", 2)
		if len(kv) != 2 {
			return nil, fmt.Errorf("-delay %q: write Method=milliseconds", part)
		}
		ms, err := strconv.Atoi(kv[1])
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("-delay %q: the delay must be a whole number of milliseconds", part)
		}
		delays[kv[0]] = ms
	}
	return delays, nil
}

// makeCertificate makes a self-signed ECDSA certificate, valid as its own CA, for hosts.
func makeCertificate(hosts []string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	template := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim-harness", Organization: []string{"vsphere-volume tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour * 365),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else if h != "" {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, nil
}

func writePEM(path string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ioutil.WriteFile(path, data, 0644)
}

// fingerprint formats a digest as colon-separated upper-case hex, as vSphere shows it.
func fingerprint(sum interface{}) string {
	var b []byte
	switch s := sum.(type) {
	case [sha1.Size]byte:
		b = s[:]
	case [sha256.Size]byte:
		b = s[:]
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func findVM(name string) (*simulator.VirtualMachine, error) {
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok && vm.Name == name {
			return vm, nil
		}
	}
	return nil, fmt.Errorf("-vm %q: no such VM (the model has %s)", name, strings.Join(vmNames(), ", "))
}

func vmNames() []string {
	var names []string
	for _, e := range simulator.Map.All("VirtualMachine") {
		names = append(names, e.Entity().Name)
	}
	sort.Strings(names)
	return names
}

func datastoreFolders() map[string]string {
	folders := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		folders[ds.Name] = ds.Info.GetDatastoreInfo().Url
	}
	return folders
}

// soapMethod finds the first element in a SOAP envelope's Body: the method called.
var soapMethod = regexp.MustCompile(`<(?:[A-Za-z0-9_]+:)?Body[^>]*>\s*<(?:[A-Za-z0-9_]+:)?([A-Za-z0-9_]+)`)

// callCounter counts the requests it passes on, per client address and method, and
// answers GET /vcsim/calls with the counts.
type callCounter struct {
	next  http.Handler
	mu    sync.Mutex
	calls map[string]map[string]int
}

func (c *callCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/vcsim/calls" {
		c.mu.Lock()
		data, err := json.Marshal(c.calls)
		c.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
		return
	}
	method := "http." + r.Method
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk") {
		body, err := ioutil.ReadAll(r.Body)
		r.Body.Close()
		if err == nil {
			if found := soapMethod.FindSubmatch(body); found != nil {
				method = string(found[1])
			}
		}
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	c.mu.Lock()
	if c.calls[client] == nil {
		c.calls[client] = map[string]int{}
	}
	c.calls[client][method]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}
