import { useEffect, useState, type FormEvent } from "react";
import { NavLink, Route, Routes, Link } from "react-router-dom";
import { useQueryClient } from "@tanstack/react-query";
import { onUnauthorized } from "./api/client";
import { readToken, saveToken } from "./api/token";
import { useTheme } from "./theme";
import { Dashboard } from "./pages/Dashboard";
import { RunsPage } from "./pages/Runs";
import { RunDetail } from "./pages/RunDetail";
import { DeploymentsPage } from "./pages/Deployments";
import { DeploymentDetail } from "./pages/DeploymentDetail";
import { PoolsPage } from "./pages/Pools";
import { PoolDetail } from "./pages/PoolDetail";

/** The shell: navigation, theme toggle, and the sign-in form whenever the API answers 401. */
export function App() {
  const [theme, toggleTheme] = useTheme();
  const [signInMessage, setSignInMessage] = useState<string | null>(null);
  useEffect(() => onUnauthorized(setSignInMessage), []);

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          Sluice
        </Link>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Dashboard
          </NavLink>
          <NavLink to="/runs">Flow runs</NavLink>
          <NavLink to="/deployments">Deployments</NavLink>
          <NavLink to="/pools">Pools</NavLink>
        </nav>
        <button
          type="button"
          className="ghost"
          data-testid="theme-toggle"
          onClick={toggleTheme}
          aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}
        >
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
      </header>
      <main id="main">
        {signInMessage !== null ? (
          <SignIn message={signInMessage} onSignedIn={() => setSignInMessage(null)} />
        ) : (
          <Routes>
            <Route path="/" element={<Dashboard />} />
            <Route path="/runs" element={<RunsPage />} />
            <Route path="/runs/:id" element={<RunDetail />} />
            <Route path="/deployments" element={<DeploymentsPage />} />
            <Route path="/deployments/:flow/:name" element={<DeploymentDetail />} />
            <Route path="/pools" element={<PoolsPage />} />
            <Route path="/pools/:name" element={<PoolDetail />} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        )}
      </main>
    </div>
  );
}

function SignIn({ message, onSignedIn }: { message: string; onSignedIn: () => void }) {
  const queryClient = useQueryClient();
  const [token, setToken] = useState(readToken() ?? "");

  function submit(event: FormEvent) {
    event.preventDefault();
    saveToken(token);
    onSignedIn();
    void queryClient.resetQueries();
  }

  return (
    <section className="card signin" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p className="error" role="alert" data-testid="error">
        {message}
      </p>
      <p className="muted">
        Paste the operator token of this server: it is <code>api_token</code> of the profile in{" "}
        <code>profiles.toml</code> (the path <code>sluice server start</code> prints). It is kept
        for this tab only.
      </p>
      <form onSubmit={submit}>
        <label htmlFor="signin-token">Operator token</label>
        <input
          id="signin-token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(event) => setToken(event.target.value)}
          required
        />
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}

function NotFound() {
  return (
    <section className="card">
      <h1>Page not found</h1>
      <p>
        This console has no page at this address. Go to the <Link to="/">dashboard</Link> or the{" "}
        <Link to="/runs">list of flow runs</Link>.
      </p>
    </section>
  );
}
