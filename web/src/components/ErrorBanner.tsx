/** The server's one-line reason, where the view's result would be. */
export function ErrorBanner({ error }: { error: string | null }) {
  if (error === null) return null;
  return (
    <div className="error" role="alert">
      {error}
    </div>
  );
}
