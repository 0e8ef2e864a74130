--[[
Convert one executed chapter notebook into the markdown chapter that report.qmd includes.

Run on pandoc's ipynb reader with --from ipynb+raw_markdown and --ipynb-output=all, so
that markdown cells arrive unparsed and every output keeps all of its representations
(image/png, text/html, text/markdown, text/plain). This filter picks what to show:

  * markdown cells and text/markdown outputs are parsed as pandoc markdown, the dialect
    Quarto reads, so {#sec-x} heading labels and @fig-x references work;
  * cells tagged parameters, injected-parameters or remove-cell are dropped, and so is
    the source of every code cell (the report shows outputs only);
  * stream outputs (stdout, stderr: logs, warnings, tqdm bars) and error outputs are
    dropped;
  * an image output is kept; a cell labelled fig-* turns its first image into a figure
    with the cell's fig-cap;
  * a text/html output that contains tables (pandas) becomes real pandoc tables, and a
    cell labelled tbl-* gives its first table the tbl-cap and the label;
  * a text/plain output is kept as a preformatted block, unless it is only an object
    repr such as "<Figure size 640x480 with 1 Axes>".

Cell options are Quarto's "#| key: value" lines at the top of a code cell source.
The markdown that pandoc writes from the result uses Quarto's cross-reference syntax
(![cap](img){#fig-x}, ": cap {#tbl-x}", @fig-x, @sec-x), so Quarto and report.lua both read it.

Metadata read from the command line (-M):
  dermaudit-chapter       the chapter stem, prefixed to heading ids so that they stay
                          unique across chapters;
  dermaudit-media-dir     the folder, relative to the working directory, that receives
                          the chapter's images;
  dermaudit-media-prefix  prepended to every image path written into the markdown.
]]

local HIDDEN_TAGS = {
  ["parameters"] = true,
  ["injected-parameters"] = true,
  ["remove-cell"] = true,
}

local chapter = "chapter"
local media_prefix = ""
local media_dir = "media"

local function has_class(el, name)
  return el.classes and el.classes:includes(name)
end

local function cell_tags(cell)
  local raw = cell.attributes["tags"]
  if raw == nil or raw == "" then
    return {}
  end
  local ok, tags = pcall(pandoc.json.decode, raw, false)
  if not ok or type(tags) ~= "table" then
    return {}
  end
  return tags
end

local function is_hidden(cell)
  for _, tag in ipairs(cell_tags(cell)) do
    if HIDDEN_TAGS[tag] then
      return true
    end
  end
  return false
end

-- Read the "#| key: value" lines at the top of a code cell as YAML, through pandoc's
-- metadata reader, so that captions are parsed as markdown inlines.
local function cell_options(source)
  local yaml_lines = {}
  for line in (source .. "\n"):gmatch("(.-)\n") do
    local option = line:match("^#|%s?(.*)$")
    if option == nil then
      break
    end
    table.insert(yaml_lines, option)
  end
  if #yaml_lines == 0 then
    return {}
  end
  local text = "---\n" .. table.concat(yaml_lines, "\n") .. "\n---\n"
  local ok, parsed = pcall(pandoc.read, text, "markdown")
  if not ok then
    pandoc.log.warn(chapter .. ": cell options are not valid YAML and were ignored:\n" .. text)
    return {}
  end
  return parsed.meta
end

local function option_string(options, key)
  local value = options[key]
  if value == nil then
    return nil
  end
  return pandoc.utils.stringify(value)
end

local function option_inlines(options, key)
  local value = options[key]
  if value == nil then
    return nil
  end
  if type(value) == "string" then
    return pandoc.Inlines({ pandoc.Str(value) })
  end
  if value.t == "MetaBlocks" then
    return pandoc.utils.blocks_to_inlines(value)
  end
  return pandoc.Inlines(value)
end

local function is_object_repr(text)
  local stripped = text:gsub("^%s+", ""):gsub("%s+$", "")
  return stripped:match("^%[?<.*>%]?$") ~= nil
end

local function image_in(block)
  if (block.t == "Para" or block.t == "Plain") and #block.content == 1 and block.content[1].t == "Image" then
    return block.content[1]
  end
  return nil
end

local function cell_text(cell)
  return pandoc.utils.stringify(cell.contents)
end

local function is_number_text(text)
  if text == "" or text == "nan" or text == "NaN" or text == "inf" or text == "-inf" then
    return true
  end
  return text:match("^[%-+]?%d[%d,]*%.?%d*[eE]?[%-+]?%d*%%?$") ~= nil
end

-- pandas writes the index names as a second header row ("corruption", "", "", ...),
-- below the column labels whose first cell contains the columns' name ("severity"). Merge
-- the two rows into one ("corruption / severity", 1, 2, ...) when the second row fills
-- only the leading index columns, because simple and pipe tables have one header row.
-- Two real header rows (MultiIndex columns) stay as they are.
local function merge_index_name_row(head)
  if #head.rows ~= 2 then
    return
  end
  local top, bottom = head.rows[1], head.rows[2]
  if #top.cells ~= #bottom.cells then
    return
  end
  local n_index = 0
  for i, bottom_cell in ipairs(bottom.cells) do
    if top.cells[i].col_span ~= 1 or bottom_cell.col_span ~= 1 then
      return
    end
    if #bottom_cell.contents > 0 then
      if i ~= n_index + 1 then
        return
      end
      n_index = i
    end
  end

  for i = 1, n_index do
    local index_name = pandoc.utils.stringify(bottom.cells[i].contents)
    local columns_name = pandoc.utils.stringify(top.cells[i].contents)
    local text = columns_name == "" and index_name or (index_name .. " / " .. columns_name)
    top.cells[i].contents = { pandoc.Plain(pandoc.Inlines(text)) }
  end
  head.rows = { top }
end

-- Right-align the columns whose body cells are all numbers, left-align the others.
local function align_columns(tbl)
  local numeric = {}
  for i = 1, #tbl.colspecs do
    numeric[i] = true
  end
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      for i, cell in ipairs(row.cells) do
        if numeric[i] ~= nil and not is_number_text(cell_text(cell)) then
          numeric[i] = false
        end
      end
    end
  end
  for i, colspec in ipairs(tbl.colspecs) do
    local align = numeric[i] and "AlignRight" or "AlignLeft"
    tbl.colspecs[i] = { align, colspec[2] }
  end
end

local function tables_from_html(html)
  local tables = pandoc.List()
  local doc = pandoc.read(html, "html")
  doc:walk({
    Table = function(tbl)
      tbl.attr = pandoc.Attr()
      merge_index_name_row(tbl.head)
      align_columns(tbl)
      tables:insert(tbl)
    end,
  })
  if #tables > 0 then
    return tables
  end
  return doc.blocks
end

-- Write the image from pandoc's media bag into the chapter's media folder, and point
-- the image at it.
local function relocate_image(image)
  pandoc.mediabag.write(media_dir, image.src)
  image.src = media_prefix .. media_dir .. "/" .. image.src
  return image
end

-- Pick the blocks that show one output: an image before markdown before HTML before
-- plain text, as a notebook front end would.
local function output_blocks(output)
  if has_class(output, "stream") or has_class(output, "error") then
    return {}
  end
  local by_kind = {}
  for _, block in ipairs(output.content) do
    local image = image_in(block)
    if image ~= nil then
      by_kind.image = by_kind.image or { pandoc.Para({ relocate_image(image) }) }
    elseif block.t == "RawBlock" and block.format == "markdown" then
      by_kind.markdown = pandoc.read(block.text, "markdown").blocks
    elseif block.t == "RawBlock" and block.format == "html" then
      by_kind.html = tables_from_html(block.text)
    elseif block.t == "CodeBlock" and not is_object_repr(block.text) then
      by_kind.plain = { pandoc.CodeBlock(block.text, pandoc.Attr("", { "output" })) }
    end
  end
  return by_kind.image or by_kind.markdown or by_kind.html or by_kind.plain or {}
end

local function caption_of(inlines)
  return pandoc.Caption({ pandoc.Plain(inlines) })
end

local function make_figure(blocks, label, caption)
  for i, block in ipairs(blocks) do
    local image = image_in(block)
    if image ~= nil then
      image.caption = caption
      blocks[i] = pandoc.Figure({ pandoc.Plain({ image }) }, caption_of(caption), pandoc.Attr(label))
      return blocks
    end
  end
  -- Not an error: a chapter may reserve more figure cells than a run fills (the case slots).
  pandoc.log.info(chapter .. ": cell " .. label .. " has a figure label but no image output; left out")
  return blocks
end

local function caption_table(blocks, label, caption)
  for _, block in ipairs(blocks) do
    if block.t == "Table" then
      block.caption = caption_of(caption)
      block.identifier = label or ""
      return blocks
    end
  end
  pandoc.log.warn(chapter .. ": cell " .. (label or "") .. " has a table caption but no table output")
  return blocks
end

local function code_cell_blocks(cell)
  local source = cell.content[1] and cell.content[1].t == "CodeBlock" and cell.content[1].text or ""
  local options = cell_options(source)
  if options["include"] == false or options["output"] == false then
    return {}
  end

  local blocks = pandoc.List()
  for _, block in ipairs(cell.content) do
    if block.t == "Div" and has_class(block, "output") then
      blocks:extend(output_blocks(block))
    end
  end

  local label = option_string(options, "label")
  local fig_cap = option_inlines(options, "fig-cap")
  local tbl_cap = option_inlines(options, "tbl-cap")
  if label ~= nil and label:match("^fig%-") then
    return make_figure(blocks, label, fig_cap or pandoc.Inlines({}))
  end
  if tbl_cap ~= nil or (label ~= nil and label:match("^tbl%-")) then
    return caption_table(blocks, label, tbl_cap or pandoc.Inlines({}))
  end
  if fig_cap ~= nil then
    return make_figure(blocks, "", fig_cap)
  end
  return blocks
end

local function cell_blocks(cell)
  if is_hidden(cell) then
    return {}
  end
  if has_class(cell, "code") then
    return code_cell_blocks(cell)
  end
  -- With ipynb+raw_markdown, pandoc leaves markdown cells unparsed. Parsing them here as
  -- pandoc markdown, as Quarto does, keeps header attributes ({#sec-x}) and citations
  -- (@fig-x) that pandoc's ipynb reader would otherwise drop.
  local blocks = pandoc.List()
  for _, block in ipairs(cell.content) do
    if block.t == "RawBlock" and block.format == "markdown" then
      blocks:extend(pandoc.read(block.text, "markdown").blocks)
    else
      blocks:insert(block)
    end
  end
  return blocks
end

-- Prefix heading ids with the chapter stem, and number repeated ones, because each
-- markdown cell was parsed on its own and the chapters share one document.
local function prefix_heading_ids(blocks)
  local has_title = false
  local seen = {}
  local result = pandoc.Blocks(blocks):walk({
    Header = function(header)
      has_title = has_title or header.level == 1
      -- Explicit sec-* labels are cross-reference targets and keep their names.
      if header.identifier ~= "" and not header.identifier:match("^sec%-") then
        local id = chapter .. "-" .. header.identifier
        seen[id] = (seen[id] or 0) + 1
        header.identifier = seen[id] == 1 and id or (id .. "-" .. seen[id])
      end
      return header
    end,
  })
  if not has_title then
    pandoc.log.warn(chapter .. ": no level-1 heading (# Chapter title) found, so the chapter has no title")
  end
  return result
end

function Pandoc(doc)
  chapter = pandoc.utils.stringify(doc.meta["dermaudit-chapter"] or "chapter")
  media_prefix = pandoc.utils.stringify(doc.meta["dermaudit-media-prefix"] or "")
  media_dir = pandoc.utils.stringify(doc.meta["dermaudit-media-dir"] or "media")

  local blocks = pandoc.List()
  for _, block in ipairs(doc.blocks) do
    if block.t == "Div" and has_class(block, "cell") then
      blocks:extend(cell_blocks(block))
    else
      blocks:insert(block)
    end
  end
  -- The notebook metadata (kernelspec, papermill) must not reach the markdown header.
  return pandoc.Pandoc(prefix_heading_ids(blocks), pandoc.Meta({}))
end
