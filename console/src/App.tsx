// The console's shell: sign-in (user name and password, or an API token), the header with
// navigation and the language switch, and the page the hash route names.
//
// Test ids the browser tests rely on (keep them stable; console/TESTIDS.md lists them all):
//   sign-in: form[data-testid=signin] with input[name=name], input[name=password], signin-submit;
//            token sign-in: signin-token-toggle, input[name=token]
//   shell:   a[data-nav=<page>], lang-switch, signout, me
//   pages:   page-<overview|datasets|dataset|jobs|job|builder|approvals|models|services|service|psi|queries>
//   see TESTIDS.md for each page's controls (upload-file, upload-submit, job-row-<id>,
//   job-status, roc-plot, approve-<id>, reject-<id>, reason, ...).
import { useEffect, useState } from "react";
import { api, ApiError, hasBearerToken, setBearerToken, setCsrfToken } from "./api";
import { useI18n } from "./i18n";
import { useRoute } from "./router";
import { JobBuilder } from "./builder/JobBuilder";
import { MeProvider, type Me } from "./components/common";
import { resetLive } from "./components/live";
import { Overview } from "./pages/Overview";
import { Datasets } from "./pages/Datasets";
import { Jobs } from "./pages/Jobs";
import { JobPage } from "./pages/JobPage";
import { Approvals } from "./pages/Approvals";
import { Models } from "./pages/Models";
import { Services } from "./pages/Services";
import { Psi } from "./pages/Psi";
import { Queries } from "./pages/Queries";

export type { Me };

// Set while this browser has signed in (and not out): only then is GET /session worth asking
// at start. Without it a first visit would begin with a 401, which browsers log as an error.
const SIGNED_IN_HINT = "ferry.signed_in";

const NAV = ["overview", "datasets", "jobs", "builder", "approvals", "models", "services", "psi", "queries"];

export function App() {
  const { t, lang, setLang } = useI18n();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [party, setParty] = useState("");
  const route = useRoute();

  useEffect(() => {
    api<{ party: string }>("GET", "/health").then((h) => setParty(h.party)).catch(() => {});
    // After a reload the session cookie (or the tab's token) still signs us in; the session
    // answers its CSRF token again so that state-changing requests keep working.
    if (!localStorage.getItem(SIGNED_IN_HINT) && !hasBearerToken()) {
      setMe(null);
      return;
    }
    api<Me>("GET", "/session")
      .then((m) => {
        setCsrfToken(m.csrf_token ?? null);
        setMe(m);
      })
      .catch(() => {
        localStorage.removeItem(SIGNED_IN_HINT);
        setBearerToken(null);
        setMe(null);
      });
  }, []);

  useEffect(() => {
    document.title = party ? `${t("app.title")} · ${party}` : t("app.title");
  }, [party, t]);

  if (me === undefined) return <div className="loading">{t("loading")}</div>;
  if (me === null)
    return (
      <SignIn
        party={party}
        onSignedIn={(m) => {
          localStorage.setItem(SIGNED_IN_HINT, "1");
          resetLive();
          setMe(m);
        }}
      />
    );

  const page = route[0] ?? "overview";
  return (
    <MeProvider me={me}>
      <div className="shell">
        <header>
          <span className="brand">
            {t("app.title")} · {party}
          </span>
          <nav>
            {NAV.map((n) => (
              <a key={n} href={`#/${n}`} className={page === n ? "active" : ""} data-nav={n}>
                {t(`nav.${n}`)}
              </a>
            ))}
          </nav>
          <span className="me" data-testid="me" title={me.roles.join(", ")}>
            {me.actor}
          </span>
          <button data-testid="lang-switch" onClick={() => setLang(lang === "en" ? "zh" : "en")}>
            {t("lang.switch")}
          </button>
          <button
            data-testid="signout"
            onClick={async () => {
              await api("DELETE", "/session").catch(() => {});
              localStorage.removeItem(SIGNED_IN_HINT);
              setCsrfToken(null);
              setBearerToken(null);
              setMe(null);
            }}
          >
            {t("signout")}
          </button>
        </header>
        <main>
          <Page page={page} arg={route.slice(1).join("/") || undefined} />
        </main>
      </div>
    </MeProvider>
  );
}

function Page({ page, arg }: { page: string; arg?: string }) {
  const { t } = useI18n();
  switch (page) {
    case "overview":
      return <Overview />;
    case "datasets":
      return <Datasets name={arg} />;
    case "jobs":
      return arg ? <JobPage key={arg} id={arg} /> : <Jobs />;
    case "builder":
      return (
        <div data-testid="page-builder">
          <JobBuilder />
        </div>
      );
    case "approvals":
      return <Approvals />;
    case "models":
      return <Models name={arg} />;
    case "services":
      return <Services name={arg} />;
    case "psi":
      return <Psi />;
    case "queries":
      return <Queries id={arg} />;
    default:
      return (
        <div data-testid="page-not-found">
          <p>{t("not_found")}</p>
          <a href="#/overview">{t("nav.overview")}</a>
        </div>
      );
  }
}

function SignIn({ party, onSignedIn }: { party: string; onSignedIn: (m: Me) => void }) {
  const { t, lang, setLang } = useI18n();
  const [withToken, setWithToken] = useState(false);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError("");
    setBusy(true);
    try {
      if (withToken) {
        setBearerToken(token.trim());
      } else {
        const r = await api<{ csrf_token: string }>("POST", "/session", { name, password });
        setCsrfToken(r.csrf_token);
      }
      onSignedIn(await api<Me>("GET", "/session"));
    } catch (err) {
      if (withToken) setBearerToken(null);
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="signin" onSubmit={submit} data-testid="signin">
      <h1>{t("signin.title", { party })}</h1>
      {withToken ? (
        <label>
          {t("signin.token_label")}
          <input name="token" type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" />
        </label>
      ) : (
        <>
          <label>
            {t("signin.name")}
            <input name="name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="username" />
          </label>
          <label>
            {t("signin.password")}
            <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" />
          </label>
        </>
      )}
      {error && (
        <p className="error" role="alert" data-testid="signin-error">
          {error}
        </p>
      )}
      <button type="submit" data-testid="signin-submit" disabled={busy}>
        {t("signin.submit")}
      </button>
      <div className="signin-links">
        <button type="button" className="link" data-testid="signin-token-toggle" onClick={() => setWithToken(!withToken)}>
          {withToken ? t("signin.with_password") : t("signin.token")}
        </button>
        <button type="button" className="link" data-testid="lang-switch" onClick={() => setLang(lang === "en" ? "zh" : "en")}>
          {t("lang.switch")}
        </button>
      </div>
    </form>
  );
}
