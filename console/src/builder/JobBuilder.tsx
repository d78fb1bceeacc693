// Placeholder until the job builder lands: the route exists so navigation and tests can rely on it.
export function JobBuilder() {
  return <div data-testid="job-builder" />;
}
