import { useEffect, useState } from "react";
import { api, ApiError, setCsrfToken } from "./api";
import { useI18n } from "./i18n";
import { useRoute } from "./router";
import { JobBuilder } from "./builder/JobBuilder";

export type Me = { actor: string; roles: string[]; permissions: string[]; csrf_token?: string };

const NAV = ["overview", "datasets", "jobs", "builder", "approvals", "models", "services", "psi", "queries"];

export function App() {
  const { t, lang, setLang } = useI18n();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [party, setParty] = useState("");
  const route = useRoute();

  useEffect(() => {
    api<{ party: string }>("GET", "/health").then((h) => setParty(h.party)).catch(() => {});
    api<Me>("GET", "/session")
      .then((m) => {
        setCsrfToken(m.csrf_token ?? null);
        setMe(m);
      })
      .catch(() => setMe(null));
  }, []);

  if (me === undefined) return <div className="loading">{t("loading")}</div>;
  if (me === null) return <SignIn party={party} onSignedIn={setMe} />;

  const page = route[0] ?? "overview";
  return (
    <div className="shell">
      <header>
        <span className="brand">{t("app.title")} · {party}</span>
        <nav>
          {NAV.map((n) => (
            <a key={n} href={`#/${n}`} className={page === n ? "active" : ""} data-nav={n}>
              {t(`nav.${n}`)}
            </a>
          ))}
        </nav>
        <span className="me">{me.actor}</span>
        <button data-testid="lang-switch" onClick={() => setLang(lang === "en" ? "zh" : "en")}>{t("lang.switch")}</button>
        <button
          onClick={async () => {
            await api("DELETE", "/session").catch(() => {});
            setCsrfToken(null);
            setMe(null);
          }}
        >
          {t("signout")}
        </button>
      </header>
      <main>{page === "builder" ? <JobBuilder /> : <div data-testid={`page-${page}`} />}</main>
    </div>
  );
}

function SignIn({ party, onSignedIn }: { party: string; onSignedIn: (m: Me) => void }) {
  const { t } = useI18n();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      const r = await api<{ csrf_token: string }>("POST", "/session", { name, password });
      setCsrfToken(r.csrf_token);
      onSignedIn(await api<Me>("GET", "/session"));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <form className="signin" onSubmit={submit}>
      <h1>{t("signin.title", { party })}</h1>
      <label>
        {t("signin.name")}
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="username" />
      </label>
      <label>
        {t("signin.password")}
        <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" />
      </label>
      {error && <p className="error" role="alert">{error}</p>}
      <button type="submit">{t("signin.submit")}</button>
    </form>
  );
}
