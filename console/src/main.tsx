import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router-dom";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { App } from "./App";
import { ApiError } from "./api/client";
import { adoptTokenFromFragment } from "./api/token";
import { applyInitialTheme } from "./theme";

adoptTokenFromFragment();
applyInitialTheme();

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A client mistake (4xx) will not fix itself by asking again.
      retry: (failureCount, error) =>
        !(error instanceof ApiError && error.status >= 400 && error.status < 500) && failureCount < 2,
      refetchOnWindowFocus: false,
      staleTime: 2_000,
    },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter basename="/ui">
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </StrictMode>,
  );
}
