package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tasker-go/tasker/internal/auth"
)

func newAuthCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Make keys, tokens and API keys for the REST API's auth (tasker serve --auth-config)",
	}
	cmd.AddCommand(newGenerateKeysCmd(g), newGenerateTokenCmd(g), newGenerateAPIKeyCmd(g), newShowPermissionsCmd(g), newValidateTokenCmd(g))
	return cmd
}

func newGenerateKeysCmd(g *globals) *cobra.Command {
	var dir, alg string
	var bits int
	var force bool
	cmd := &cobra.Command{
		Use:   "generate-keys",
		Short: "Write a JWT signing key pair: jwt-private-key.pem, jwt-public-key.pem and jwks.json",
		Args:  exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			kp, err := auth.GenerateKeyPair(alg, bits)
			if err != nil {
				return usageError{err}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("--output-dir: %w", err)
			}
			files := []struct {
				name string
				data []byte
				mode os.FileMode
			}{{"jwt-private-key.pem", kp.Private, 0o600}, {"jwt-public-key.pem", kp.Public, 0o644}, {"jwks.json", kp.JWKS, 0o644}}
			for _, f := range files {
				path := filepath.Join(dir, f.name)
				flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
				if force {
					flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
				}
				fh, err := os.OpenFile(path, flags, f.mode)
				if errors.Is(err, os.ErrExist) {
					return usageError{fmt.Errorf("%s exists: pick another --output-dir, or --force to replace it", path)}
				}
				if err != nil {
					return err
				}
				_, werr := fh.Write(f.data)
				if err := errors.Join(werr, fh.Close()); err != nil {
					return fmt.Errorf("write %s: %w", path, err)
				}
				fmt.Fprintln(g.stdout, "wrote", path)
			}
			fmt.Fprintf(g.stdout, "key id (kid) %s, %s; keep jwt-private-key.pem secret: it signs tokens (tasker auth generate-token)\n", kp.KeyID, alg)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "output-dir", "keys", "directory to write the files to")
	cmd.Flags().StringVar(&alg, "algorithm", "RS256", "RS256 (RSA) or ES256 (P-256 EC)")
	cmd.Flags().IntVar(&bits, "key-size", 2048, "RSA key size in bits (RS256)")
	cmd.Flags().BoolVar(&force, "force", false, "replace files that exist")
	return cmd
}

func newGenerateTokenCmd(g *globals) *cobra.Command {
	var keyPath, subject, issuer, audience, claim string
	var perms []string
	var expiry time.Duration
	cmd := &cobra.Command{
		Use:   "generate-token --private-key FILE --permissions P,...",
		Short: "Sign a JWT carrying permissions with a private key",
		Args:  exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			if keyPath == "" {
				return usageError{errors.New("no --private-key: pass the PEM file 'tasker auth generate-keys' wrote")}
			}
			if len(perms) == 0 {
				return usageError{errors.New("no --permissions: list what the token may do ('tasker auth show-permissions')")}
			}
			raw, err := os.ReadFile(keyPath)
			if err != nil {
				return usageError{fmt.Errorf("--private-key: %w", err)}
			}
			tok, err := auth.GenerateToken(raw, auth.TokenSpec{Subject: subject, Issuer: issuer, Audience: audience,
				Permissions: perms, PermissionsClaim: claim, TTL: expiry})
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintln(g.stdout, tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "private-key", "", "PEM private key (RSA signs RS256, P-256 EC signs ES256)")
	cmd.Flags().StringSliceVar(&perms, "permissions", nil, "permissions, comma-separated (tasks:create,tasks:read or tasks:*)")
	cmd.Flags().StringVar(&subject, "subject", "tasker-cli", "the token's sub")
	cmd.Flags().StringVar(&issuer, "issuer", "tasker-core", "the token's iss: the server's jwt_issuer")
	cmd.Flags().StringVar(&audience, "audience", "tasker-api", "the token's aud: the server's jwt_audience")
	cmd.Flags().StringVar(&claim, "permissions-claim", "permissions", "the claim carrying the permissions: the server's permissions_claim")
	cmd.Flags().DurationVar(&expiry, "expiry", 24*time.Hour, "how long the token is valid")
	return cmd
}

func newGenerateAPIKeyCmd(g *globals) *cobra.Command {
	var perms []string
	var desc string
	cmd := &cobra.Command{
		Use:   "generate-api-key --permissions P,...",
		Short: "Make an API key and print it with the config entry (its SHA-256) for --auth-config",
		Args:  exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(perms) == 0 {
				return usageError{errors.New("no --permissions: list what the key may do ('tasker auth show-permissions')")}
			}
			key, sum, err := auth.NewAPIKey()
			if err != nil {
				return err
			}
			entry := auth.Config{APIKeys: []auth.APIKey{{SHA256: sum, Permissions: perms, Description: desc}}}
			if _, err := auth.ParseConfig(mustYAML(entry)); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(g.stdout, "API key (give it to the client; it is not stored anywhere):\n  %s\n\n", key)
			fmt.Fprintf(g.stdout, "config entry (add it under api_keys in the --auth-config file):\n")
			fmt.Fprintf(g.stdout, "  - sha256: %s\n    permissions: [%s]\n", sum, strings.Join(perms, ", "))
			if desc != "" {
				fmt.Fprintf(g.stdout, "    description: %q\n", desc)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&perms, "permissions", nil, "permissions, comma-separated (tasks:read,dlq:* or *)")
	cmd.Flags().StringVar(&desc, "description", "", "who the key is for (shown as the caller in logs and 403s)")
	return cmd
}

func mustYAML(v any) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func newShowPermissionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show-permissions",
		Short: "List the permissions (tasker-core's resource:action vocabulary)",
		Args:  exactArgs(0),
		RunE: func(_ *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PERMISSION\tDESCRIPTION")
			for _, p := range auth.Permissions {
				fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Description)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "\nwildcards: RESOURCE:* (tasks:*, steps:*, dlq:*, templates:*, system:*, worker:*) and * (every permission)")
			return nil
		},
	}
}

func newValidateTokenCmd(g *globals) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "validate-token --auth-config FILE TOKEN",
		Short: "Check a token as the server would (signature, issuer, audience, expiry, permissions); TOKEN - reads stdin",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if cfgPath == "" {
				return usageError{errors.New("no --auth-config: pass the file 'tasker serve --auth-config' reads")}
			}
			cfg, err := auth.LoadConfig(cfgPath)
			if err != nil {
				return usageError{err}
			}
			a, err := auth.New(cfg, nil)
			if err != nil {
				return usageError{err}
			}
			tok := args[0]
			if tok == "-" {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if err != nil {
					return err
				}
				tok = string(b)
			}
			p, fail := a.Token(strings.TrimSpace(tok))
			if fail != nil {
				return fmt.Errorf("token refused (%s): %s", fail.Reason, fail.Message)
			}
			fmt.Fprintf(g.stdout, "valid: subject %s, permissions %s\n", p.Subject, strings.Join(p.Permissions, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "auth-config", "", "the server's auth config file")
	return cmd
}
