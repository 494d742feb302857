// Every view exports its data (JSON) and its picture (SVG, PNG).

function download(name: string, blob: Blob): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** The SVG's markup, standalone (namespace and size set). */
export function svgMarkup(svg: SVGSVGElement): string {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  const { width, height } = svg.getBoundingClientRect();
  copy.setAttribute('width', String(Math.ceil(width)));
  copy.setAttribute('height', String(Math.ceil(height)));
  return new XMLSerializer().serializeToString(copy);
}

async function pngOf(svg: SVGSVGElement, scale = 2): Promise<Blob> {
  const markup = svgMarkup(svg);
  const { width, height } = svg.getBoundingClientRect();
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(markup)}`;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(width * scale);
  canvas.height = Math.ceil(height * scale);
  const g = canvas.getContext('2d')!;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.drawImage(img, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG failed'))), 'image/png'),
  );
}

/**
 * Buttons that download `data` as `sonde-{name}.json` and the picture `svg()` returns (the view's main
 * SVG) as .svg and .png.
 */
export function ExportBar({
  name,
  data,
  svg,
}: {
  name: string;
  data: unknown;
  svg?: () => SVGSVGElement | null;
}) {
  return (
    <div className="export" role="group" aria-label="export">
      <button
        type="button"
        onClick={() =>
          download(
            `sonde-${name}.json`,
            new Blob([JSON.stringify(data, null, 1)], { type: 'application/json' }),
          )
        }
      >
        Export JSON
      </button>
      {svg && (
        <>
          <button
            type="button"
            onClick={() => {
              const s = svg();
              if (s) download(`sonde-${name}.svg`, new Blob([svgMarkup(s)], { type: 'image/svg+xml' }));
            }}
          >
            Export SVG
          </button>
          <button
            type="button"
            onClick={() => {
              const s = svg();
              if (s) void pngOf(s).then((b) => download(`sonde-${name}.png`, b));
            }}
          >
            Export PNG
          </button>
        </>
      )}
    </div>
  );
}
