// The explorer's frame: model choice, navigation between views, and the chosen view.
import { useState } from 'react';
import { api } from './api';
import { ErrorBanner } from './components/ErrorBanner';
import { ExplorerContext } from './context';
import { useRequest } from './hooks';
import { setUrlParams, useUrlParams } from './url-state';
import { VIEWS } from './views';

export function App() {
  // Bumped when the server opens something new (an SAE a job trained): /api/info is read again.
  const [generation, setGeneration] = useState(0);
  const info = useRequest(`info:${generation}`, api.info);
  const params = useUrlParams();
  const viewId = params.get('view') ?? VIEWS[0]!.id;
  const view = VIEWS.find((v) => v.id === viewId) ?? VIEWS[0]!;
  if (info.error) return <ErrorBanner error={info.error} />;
  if (!info.data) return <p className="loading">Connecting…</p>;
  const models = info.data.models;
  const model = models.find((m) => m.id === params.get('model'))?.id ?? models[0]!.id;
  const View = view.component;
  return (
    <ExplorerContext.Provider value={{ info: info.data, model, refresh: () => setGeneration((n) => n + 1) }}>
      <header>
        <h1>Sonde</h1>
        <label>
          Model{' '}
          <select value={model} onChange={(e) => setUrlParams({ model: e.target.value })}>
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id} ({m.nLayers} layers, d_model {m.dModel})
              </option>
            ))}
          </select>
        </label>
        <nav aria-label="views">
          {VIEWS.map((v) => (
            <button
              key={v.id}
              type="button"
              aria-current={v.id === view.id ? 'page' : undefined}
              onClick={() => setUrlParams({ view: v.id }, true)}
            >
              {v.title}
            </button>
          ))}
        </nav>
      </header>
      <main>
        <View key={`${view.id}:${model}`} />
      </main>
    </ExplorerContext.Provider>
  );
}
